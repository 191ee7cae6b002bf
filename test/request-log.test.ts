import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { Client, baseEnv, build, createTestDatabase } from './helper.js'
import { captureLog } from './support/log-capture.js'
import { freePort } from './support/private-mariadb.js'
import { startServer } from './support/server-process.js'

// One line per answered request (src/logger.ts, OneLinePerRequest), and in production a buffered
// standard output that still shows every line within a second and on exit.

t.test('one line per request, with what Fastify\'s two said', async (t) => {
  const log = captureLog()
  const app = await build(t, { ...baseEnv, LOG_LEVEL: 'info', SESSION_HOST: undefined }, { logger: log.logger })
  const before = log.entries().length
  await app.inject({ url: '/session?code=secret-code', remoteAddress: '127.0.0.9' })
  await app.inject('/no-such-route')
  const entries = log.entries(before)
  t.same(entries.filter((entry) => entry.msg === 'incoming request'), [], 'no "incoming request" line')
  const lines = entries.filter((entry) => entry.msg === 'request completed')
  t.equal(lines.length, 2, 'one line for each request')
  t.match(lines[0], {
    level: 30,
    reqId: String,
    req: { method: 'GET', url: '/session?code=[redacted]', host: 'localhost:80', remoteAddress: '127.0.0.9' },
    res: { statusCode: 200 },
    responseTime: Number
  })
  t.match(lines[1], { req: { url: '/no-such-route' }, res: { statusCode: 404 } })
  t.notOk(log.text().includes('secret-code'), 'the URL\'s credentials stay out')
})

t.test('below info, no request line at all', async (t) => {
  const log = captureLog()
  const app = await build(t, { ...baseEnv, LOG_LEVEL: 'warn', SESSION_HOST: undefined }, { logger: log.logger })
  await app.inject('/session')
  t.same(log.entries().filter((entry) => entry.msg === 'request completed'), [])
})

t.test('in production, lines are buffered but out within a second, and all of them on SIGTERM', async (t) => {
  const db = await createTestDatabase(t)
  const port = await freePort()
  const server = await startServer({ ...baseEnv, ...db.env, NODE_ENV: 'production', LOG_LEVEL: 'info', HOST: '127.0.0.1', PORT: String(port) })
  t.teardown(() => { server.child.kill('SIGKILL') })
  let stdout = ''
  server.child.stdout?.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  const client = new Client(`http://127.0.0.1:${port}`)
  t.equal((await client.request('/health/live')).status, 200)
  const answered = Date.now()
  while (!stdout.includes('"url":"/health/live"') && Date.now() - answered < 5000) await sleep(20)
  t.ok(stdout.includes('"url":"/health/live"'), `the line of a request on a quiet server came out (after ${Date.now() - answered} ms; the flush runs every 1000)`)

  // The next line sits in the buffer until the flush or the exit: SIGTERM at once.
  t.equal((await client.request('/session')).status, 200)
  server.child.kill('SIGTERM')
  const exit = await server.exited
  t.equal(exit.code, 0)
  t.match(exit.stdout, /"url":"\/session".*"msg":"request completed"/, 'the last request\'s line was written on exit')
})
