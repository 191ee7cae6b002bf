import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.js'
import { ConfigError } from './config/config.js'
import { loggerOptions } from './logger.js'

// Production entry point: validate the configuration, listen, and on SIGTERM/SIGINT close the
// HTTP server, the store and its pool before exiting 0.
try {
  const app = await buildApp({ logger: loggerOptions() })
  closeWithGrace({ delay: 10000 }, async ({ err }) => {
    if (err) app.log.error({ err }, 'closing after an uncaught error')
    await app.close()
  })
  await app.listen({ host: app.sessionConfig.HOST, port: app.sessionConfig.PORT })
} catch (error) {
  if (error instanceof ConfigError) {
    process.stderr.write(`${error.message}\n`)
    process.exit(1)
  }
  throw error
}
