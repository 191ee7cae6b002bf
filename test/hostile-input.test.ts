import { Agent } from 'node:http'
import type { RowDataPacket } from 'mysql2/promise'
import t from 'tap'
import { Client, httpRequest, serve } from './helper.js'
import { WARN, captureLog } from './support/log-capture.js'

t.test('a deeply nested state is refused with 400 before anything serializes it, and logs no error', async (t) => {
  const log = captureLog()
  const { client, db } = await serve(t, { LOG_LEVEL: 'warn' }, { logger: log.logger })
  await client.request('/session')
  for (const depth of [31, 4182, 20000]) {
    const res = await client.request('/session/state', { method: 'PUT', body: '['.repeat(depth) + ']'.repeat(depth) })
    t.equal(res.status, 400, `${depth} levels: 400`)
    t.match(res.json().message, /at most 30 levels/)
  }
  t.equal((await client.request('/session/state', { method: 'PUT', body: '['.repeat(30) + ']'.repeat(30) })).status, 200, '30 levels (31 in the session, what a JSON column takes) are fine')
  t.same(log.entries().filter((entry) => entry.level > WARN), [], 'no error logged')
  const [[row]] = await db.pool.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM sessions')
  t.equal(Number(row?.n), 1)
})

t.test('cookieless requests cost an hour of storage each, not SESSION_MAX_AGE; a session that carries something keeps the full idle timeout', async (t) => {
  const { base, db, client } = await serve(t)
  const agent = new Agent({ keepAlive: true, maxSockets: 8 })
  t.teardown(() => agent.destroy())
  const started = Date.now()
  await Promise.all(Array.from({ length: 300 }, () => httpRequest(`${base}/session`, { agent })))
  const [[anonymous]] = await db.pool.query<RowDataPacket[]>('SELECT COUNT(*) AS n, MAX(expires) AS latest FROM sessions')
  t.equal(Number(anonymous?.n), 300, 'the seed\'s saveUninitialized: every visit is stored')
  t.ok(Number(anonymous?.latest) <= Math.round((Date.now() + 3600000) / 1000), 'each for at most an hour')
  t.ok(Number(anonymous?.latest) >= Math.round((started + 3600000) / 1000) - 1, 'and for an hour')

  await client.request('/session/state', { method: 'PUT', body: { cart: [1] } })
  const [[kept]] = await db.pool.query<RowDataPacket[]>('SELECT MAX(expires) AS latest FROM sessions')
  t.ok(Math.abs(Number(kept?.latest) - (Date.now() + 2628000000) / 1000) < 5, 'a session with a state is kept SESSION_MAX_AGE')
})

t.test('an anonymous session in use is extended at a tenth of its short lifetime', async (t) => {
  const { db, base } = await serve(t, { SESSION_ANONYMOUS_MAX_AGE: '20000' })
  const client = new Client(base)
  await client.request('/session')
  const expiresOf = async () => Number((await db.pool.query<RowDataPacket[]>('SELECT expires FROM sessions'))[0][0]?.expires)
  const first = await expiresOf()
  t.ok(Math.abs(first - (Date.now() + 20000) / 1000) < 3, 'twenty seconds')
  await new Promise((resolve) => setTimeout(resolve, 3100))
  await client.request('/session')
  await new Promise((resolve) => setTimeout(resolve, 200)) // the touch does not hold up the answer
  t.ok(await expiresOf() >= first + 2, 'touched: the expiry moved with the use')
})
