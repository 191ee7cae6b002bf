import closeWithGrace from 'close-with-grace'
import type { FastifyInstance } from 'fastify'
import { buildApp } from './app.js'
import { ConfigError } from './config/config.js'
import { logDestination, loggerOptions } from './logger.js'

// Production entry point: validate the configuration, listen, and on SIGTERM/SIGINT close the
// HTTP server, the store and its pool before exiting 0. What stops start-up (a bad variable, a
// database that refuses the configuration, a port that cannot be had) is one line on stderr and
// exit 1, without a stack.
let app: FastifyInstance
// NODE_ENV as the environment gives it (the logger exists before .env is read).
const logs = logDestination(process.env.NODE_ENV === 'production')
try {
  app = await buildApp({ logger: { ...loggerOptions(), stream: logs } })
} catch (error) {
  if (error instanceof ConfigError) stop(error.message)
  throw error
}
closeWithGrace({ delay: 10000 }, async ({ err }) => {
  if (err) app.log.error({ err }, 'closing after an uncaught error')
  await app.close()
})
const { HOST, PORT } = app.sessionConfig
try {
  await app.listen({ host: HOST, port: PORT })
  // The line that says it listens goes out now, not with the next block.
  logs.flush()
} catch (error) {
  const message = error instanceof ConfigError ? error.message : listenProblem(error as NodeJS.ErrnoException, HOST, PORT)
  if (message === undefined) throw error
  // At once, as for a bad variable: nothing was served, and the pool's sockets close with the process.
  stop(message)
}

function stop (message: string): never {
  process.stderr.write(`${message}\n`)
  process.exit(1)
}

/** The line for a listen failure that is the configuration's (PORT or HOST), else undefined. */
function listenProblem (error: NodeJS.ErrnoException, host: string, port: number): string | undefined {
  switch (error.code) {
    case 'EADDRINUSE':
      return `PORT ${port} on ${host} is already in use: stop the program that listens there, or set PORT to a free port`
    case 'EACCES':
      return `PORT ${port} on ${host} is not allowed for this user: ports below 1024 need root or CAP_NET_BIND_SERVICE; set PORT to 1024 or above`
    case 'EADDRNOTAVAIL':
      return `HOST ${host} is not an address of this machine: set HOST to one of its addresses, 0.0.0.0 for all of them, or 127.0.0.1`
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `HOST ${host} does not resolve to an address (${error.code}): set HOST to an address of this machine, 0.0.0.0 for all of them, or 127.0.0.1`
    default:
      return undefined
  }
}
