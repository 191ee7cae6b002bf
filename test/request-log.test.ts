import { execFileSync } from 'node:child_process'
import { closeSync, constants, mkdtempSync, openSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request as httpRequest } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { Client, baseEnv, build, createTestDatabase, listen } from './helper.js'
import { logDestination } from '../src/logger.js'
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

t.test('a request its client abandons before the answer is logged, with the request', async (t) => {
  const log = captureLog()
  const slow = async (scope: FastifyInstance) => {
    scope.get('/slow', async () => {
      await sleep(400)
      return { ok: true }
    })
  }
  const app = await build(t, { ...baseEnv, LOG_LEVEL: 'info', SESSION_HOST: undefined }, { logger: log.logger, sessionRoutes: slow })
  const base = await listen(app)
  const abandoned = httpRequest(`${base}/slow?code=secret-code`)
  abandoned.on('error', () => {})
  abandoned.end()
  await sleep(100)
  abandoned.destroy()
  await sleep(600)
  const aborted = log.entries().filter((entry) => entry.msg === 'request aborted')
  t.match(aborted, [{ level: 30, reqId: String, req: { method: 'GET', url: '/slow?code=[redacted]' } }])
})

t.test('in production, a reader of stdout that goes away stops the logging, not the server', async (t) => {
  const db = await createTestDatabase(t)
  const port = await freePort()
  const server = await startServer({ ...baseEnv, ...db.env, NODE_ENV: 'production', LOG_LEVEL: 'info', HOST: '127.0.0.1', PORT: String(port) })
  t.teardown(() => { server.child.kill('SIGKILL') })
  // The pipe's reading end closes: the next block written gets EPIPE.
  server.child.stdout?.destroy()
  const client = new Client(`http://127.0.0.1:${port}`)
  const started = Date.now()
  // Through more than two periodic flushes, each of which now meets the closed pipe.
  while (Date.now() - started < 2500) {
    const answered = await Promise.race([client.request('/health/live').then((res) => res.status), sleep(2000).then(() => 'no answer')])
    if (answered !== 200) {
      t.fail(`the server stopped answering after ${Date.now() - started} ms: ${answered}`)
      return
    }
    await sleep(50)
  }
  t.pass('it answered throughout')
  server.child.kill('SIGTERM')
  const exit = await Promise.race([server.exited, sleep(10000).then(() => undefined)])
  t.equal(exit?.code, 0, 'and it still stops on SIGTERM')
})

t.test('flushing into a pipe nobody reads returns at once and drops the logging', async (t) => {
  // A named pipe whose reading end is closed: every write to it fails with EPIPE.
  const dir = mkdtempSync(join(tmpdir(), 'log-pipe-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const fifo = join(dir, 'stdout')
  execFileSync('mkfifo', [fifo])
  const readEnd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK)
  const writeEnd = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK)
  closeSync(readEnd)
  const stream = logDestination(true, writeEnd)
  stream.write('{"msg":"a line in the buffer"}\n')
  const started = Date.now()
  stream.flush()
  t.ok(Date.now() - started < 500, `flush returned after ${Date.now() - started} ms`)
  stream.write('{"msg":"a line after the reader went away"}\n')
  t.pass('and writing goes on without an error')
})
