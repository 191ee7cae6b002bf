import t, { type Test } from 'tap'
import type { RowDataPacket } from 'mysql2/promise'
import { Client, build, httpRequest, listen, privateDatabase, type HttpResponse, type PrivateDatabase } from './helper.js'
import { MARIADBD } from './support/private-mariadb.js'
import { expressMysqlSessionTable } from './support/legacy-tables.js'

// A slow database, made on a private server by a LOCK TABLES ... WRITE that another connection
// holds: every statement on the table waits, for a day by default (lock_wait_timeout).

const needsMariadbd = { skip: MARIADBD ? false : 'mariadbd is not installed' }

async function timed (request: Promise<HttpResponse>): Promise<HttpResponse & { ms: number }> {
  const started = Date.now()
  const res = await request
  return { ...res, ms: Date.now() - started }
}

async function lockSessions (t: Test, db: PrivateDatabase): Promise<() => Promise<void>> {
  const holder = await db.admin.getConnection()
  t.teardown(() => holder.release())
  await holder.query('LOCK TABLES sessions WRITE')
  return async () => { await holder.query('UNLOCK TABLES') }
}

async function sessionRows (db: PrivateDatabase): Promise<number> {
  const [rows] = await db.admin.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM sessions')
  return Number(rows[0]?.n)
}

t.test('a locked table: 503 within 2 s for more requests than the pool and its queue hold, nothing stored afterwards, recovery on unlock', needsMariadbd, async (t) => {
  const db = await privateDatabase(t)
  const base = await listen(await build(t, db.env))
  const clients = Array.from({ length: 10 }, () => new Client(base))
  const created = await Promise.all(clients.map(async (client) => (await client.request('/session')).json().createdAt))

  const unlock = await lockSessions(t, db)
  // 215 at once: 10 take the pool's connections, 200 wait in its queue, 5 are refused by it.
  const answers = await Promise.all(Array.from({ length: 215 }, (_, i) => timed(
    i % 2 === 0 ? (clients[i % clients.length] as Client).request('/session') : httpRequest(`${base}/session`))))
  t.same([...new Set(answers.map((res) => res.status))], [503], 'every request answered 503')
  t.ok(answers.every((res) => res.headers['retry-after'] === '5' && res.headers['set-cookie'] === undefined), 'with Retry-After and no cookie')
  const slowest = answers.reduce((most, res) => Math.max(most, res.ms), 0)
  t.ok(slowest < 2000, `the slowest answered in ${slowest} ms`)

  // Held past the server's lock wait (1 s), then released: a statement of a request answered 503
  // must not be waiting still, nor be run from the pool's queue, and write once the lock goes.
  await new Promise((resolve) => setTimeout(resolve, 1500))
  await unlock()
  await new Promise((resolve) => setTimeout(resolve, 500))
  t.equal(await sessionRows(db), clients.length, 'the 107 cookieless requests answered 503 left no row behind')
  const again = await Promise.all(clients.map((client) => timed(client.request('/session'))))
  t.same(again.map((res) => res.status), clients.map(() => 200), 'every session answers again without a restart')
  t.same(again.map((res) => res.json().createdAt), created, 'the same sessions')
})

t.test('a table locked before the first request: start-up and requests stay bounded, the table is upgraded once it unlocks', needsMariadbd, async (t) => {
  const db = await privateDatabase(t)
  // express-mysql-session's table without the expires index, so the first use has to alter it.
  await db.admin.query(expressMysqlSessionTable())
  const unlock = await lockSessions(t, db)

  let started = Date.now()
  const app = await build(t, db.env)
  const startup = Date.now() - started
  t.ok(startup < 3000, `the app started in ${startup} ms`)
  const base = await listen(app)
  started = Date.now()
  const during = await httpRequest(`${base}/session`)
  t.equal(during.status, 503)
  t.ok(Date.now() - started < 2000, 'within 2 s')

  await unlock()
  const after = await httpRequest(`${base}/session`)
  t.equal(after.status, 200)
  const [indexes] = await db.admin.query<RowDataPacket[]>('SHOW INDEX FROM sessions WHERE Column_name = ?', ['expires'])
  t.equal(indexes.length, 1, 'the expires index was added after the lock went')
})
