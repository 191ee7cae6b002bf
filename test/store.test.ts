import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import type { RowDataPacket } from 'mysql2/promise'
import t from 'tap'
import { LEASE_TABLE } from '../src/session/lease.js'
import { providerLoginKey } from '../src/session/identity.js'
import { maintenanceLeaseName } from '../src/session/mysql-store.js'
import { Client, build, countRows, createTestDatabase, listen, serve } from './helper.js'

t.test('a session outlives the app: a restart on the same database keeps it', async (t) => {
  const db = await createTestDatabase(t)
  const first = await build(t, db.env)
  const client = new Client(await listen(first))
  const created = (await client.request('/session')).json().createdAt
  await first.close()

  const second = await build(t, db.env)
  const again = new Client(await listen(second))
  again.cookie = client.cookie
  t.equal((await again.request('/session')).json().createdAt, created)
  t.equal(await countRows(db), 1)
})

t.test('the table is express-mysql-session\'s, plus an index on expires', async (t) => {
  const { db, client } = await serve(t)
  await client.request('/session')
  const [columns] = await db.pool.query<RowDataPacket[]>(
    'SELECT column_name AS name, column_key AS k FROM information_schema.columns WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position',
    [db.name, 'sessions'])
  t.same(columns.map((c) => c.name), ['session_id', 'expires', 'data', 'user_key', 'sso_key'])
  t.equal(columns[0]?.k, 'PRI')
  t.equal(columns[1]?.k, 'MUL', 'expires is indexed')
  t.equal(columns[4]?.k, 'MUL', 'sso_key is indexed')
  const [[row]] = await db.pool.query<RowDataPacket[]>('SELECT expires, data FROM sessions')
  t.ok(Math.abs(Number(row?.expires) - (Date.now() + 3600000) / 1000) < 5, 'expires in seconds: an hour for a session that carries nothing yet')
  t.match(JSON.parse(String(row?.data)), { cookie: { originalMaxAge: 2628000000, httpOnly: true, path: '/' } })
})

t.test('an existing express-mysql-session table is upgraded in place, idempotently', async (t) => {
  const db = await createTestDatabase(t)
  // The exact schema express-mysql-session 3 creates, with a row the seed app wrote.
  const require = createRequire(import.meta.url)
  const schema = await readFile(join(dirname(require.resolve('express-mysql-session')), 'schema.sql'), 'utf8')
  await db.pool.query(schema)
  const expires = Math.round(Date.now() / 1000) + 3600
  await db.pool.query('INSERT INTO sessions VALUES (?, ?, ?)', ['legacy', expires, JSON.stringify({ cookie: { originalMaxAge: 3600000, expires: new Date(expires * 1000) }, views: 3 })])

  await (await build(t, db.env)).close()
  await (await build(t, db.env)).close()
  const [indexes] = await db.pool.query<RowDataPacket[]>('SHOW INDEX FROM sessions WHERE Column_name = ?', ['expires'])
  t.equal(indexes.length, 1, 'one index on expires after two starts')
  t.equal(await countRows(db), 1, 'existing rows kept')
})

t.test('two instances creating the table at once both start', async (t) => {
  const db = await createTestDatabase(t)
  const apps = await Promise.all([build(t, db.env), build(t, db.env), build(t, db.env)])
  for (const app of apps) t.equal((await app.inject({ url: '/health/ready' })).statusCode, 200)
})

t.test('SESSION_TABLE names the table', async (t) => {
  const { db, client } = await serve(t, { SESSION_TABLE: 'web_sessions' })
  await client.request('/session')
  t.equal(await countRows(db, 'web_sessions'), 1)
})

t.test('expired rows are not served: the stored expiry is the idle timeout', async (t) => {
  const { db, client } = await serve(t)
  const first = (await client.request('/session')).json()
  await db.pool.query('UPDATE sessions SET expires = ?', [Math.floor(Date.now() / 1000) - 1])
  const next = (await client.request('/session')).json()
  t.not(next.createdAt, first.createdAt, 'a fresh session replaces the expired one')
})

t.test('cleanup removes expired rows in batches and leaves live ones', async (t) => {
  const { app, db } = await serve(t)
  await app.sessionStore.ping()
  const now = Math.floor(Date.now() / 1000)
  const values = Array.from({ length: 25000 }, (_, i) => [`old${i}`, now - 10, '{"cookie":{}}'])
  await db.pool.query('INSERT INTO sessions (session_id, expires, data) VALUES ?', [values])
  await db.pool.query('INSERT INTO sessions (session_id, expires, data) VALUES (?, ?, ?)', ['live', now + 3600, '{"cookie":{}}'])
  t.equal(await app.sessionStore.cleanupExpired(), 25000)
  t.equal(await countRows(db), 1)
})

t.test('cleanup runs on one instance at a time, and once per interval', async (t) => {
  const { app, db } = await serve(t)
  await app.sessionStore.ping()
  const lease = maintenanceLeaseName('cleanup', db.name, 'sessions')
  // Another instance holds the lease, as it does while it cleans.
  await db.pool.query(`INSERT INTO ${LEASE_TABLE} (name, holder, slot, held_until) VALUES (?, 'another', 0, ?)
    ON DUPLICATE KEY UPDATE holder = VALUES(holder), slot = VALUES(slot), held_until = VALUES(held_until)`, [lease, Date.now() + 60000])
  await db.pool.query('INSERT INTO sessions (session_id, expires, data) VALUES (?, ?, ?)', ['old', 1, '{"cookie":{}}'])
  t.equal(await app.sessionStore.cleanupExpired(), 0, 'another instance holds the lease: skip')
  t.equal(await countRows(db), 1)
  await db.pool.query(`UPDATE ${LEASE_TABLE} SET held_until = 0 WHERE name = ?`, [lease])
  t.equal(await app.sessionStore.cleanupExpired({ intervalMs: 3600000 }), 1, 'released: this instance claims the interval')
  await db.pool.query('INSERT INTO sessions (session_id, expires, data) VALUES (?, ?, ?)', ['old2', 1, '{"cookie":{}}'])
  t.equal(await app.sessionStore.cleanupExpired({ intervalMs: 3600000 }), 0, 'the interval has had its cleanup')
  const [[row]] = await db.pool.query<RowDataPacket[]>(`SELECT holder, slot, held_until FROM ${LEASE_TABLE} WHERE name = ?`, [lease])
  t.equal(Number(row?.slot) % 3600000, 0, 'the claim is of the interval, which starts at a multiple of it')
  t.equal(Number(row?.held_until), 0, 'and the lease was released when the run ended')
})

t.test('a long cleanup rests between batches and stops between them when the server closes', async (t) => {
  const db = await createTestDatabase(t)
  const app = await build(t, { ...db.env, SESSION_CLEANUP_INTERVAL: '100' })
  await app.sessionStore.ping()
  const now = Math.floor(Date.now() / 1000)
  const total = 60000
  for (let batch = 0; batch < total / 10000; batch++) {
    const values = Array.from({ length: 10000 }, (_, i) => [`old${batch}-${i}`, now - 10, '{"cookie":{}}'])
    await db.pool.query('INSERT INTO sessions (session_id, expires, data) VALUES ?', [values])
  }
  const started = Date.now()
  while (await countRows(db) === total && Date.now() - started < 10000) await new Promise((resolve) => setTimeout(resolve, 20))
  const closing = Date.now()
  await app.close()
  const closeMs = Date.now() - closing
  const left = await countRows(db)
  t.ok(left > 0 && left < total, `the cleanup had begun and was stopped midway: ${left} of ${total} rows left`)
  t.ok(closeMs < 2000, `close waited ${closeMs} ms, for the batch in progress only`)
})

t.test('the cleanup timer runs by itself', async (t) => {
  const { app, db } = await serve(t, { SESSION_CLEANUP_INTERVAL: '200' })
  await app.sessionStore.ping()
  await db.pool.query('INSERT INTO sessions (session_id, expires, data) VALUES (?, ?, ?)', ['old', 1, '{"cookie":{}}'])
  const started = Date.now()
  while (await countRows(db) > 0 && Date.now() - started < 5000) await new Promise((resolve) => setTimeout(resolve, 100))
  t.equal(await countRows(db), 0)
})

t.test('claimOnce: a key is claimed once for a while across instances, given back, and its row cleaned up', async (t) => {
  const db = await createTestDatabase(t)
  const [one, two] = await Promise.all([build(t, db.env), build(t, db.env)])
  await Promise.all([one.sessionStore.ping(), two.sessionStore.ping()])
  const claims = await Promise.all([one, two, one, two].map((app) => app.sessionStore.claimOnce('token-1', 60000)))
  t.same(claims.filter(Boolean), [true], 'of four claims at once on two instances, one wins')
  await one.sessionStore.releaseOnce('token-1')
  t.equal(await two.sessionStore.claimOnce('token-1', 60000), true, 'given back: claimed again')
  t.equal(await one.sessionStore.claimOnce('token-2', 1), true, 'another key')
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.equal(await two.sessionStore.claimOnce('token-2', 60000), true, 'a claim past its time is claimed again')
  await db.pool.query(`UPDATE ${LEASE_TABLE} SET held_until = 0 WHERE name LIKE 'once:%'`)
  await one.sessionStore.cleanupExpired()
  const [[left]] = await db.pool.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM ${LEASE_TABLE} WHERE name LIKE 'once:%'`)
  t.equal(Number(left?.n), 0, 'the cleanup removes the claims whose time has passed')
})

t.test('the upgrade that adds sso_key keys the single sign-on sessions already stored, so a logout token naming only their sid finds them', async (t) => {
  const db = await createTestDatabase(t)
  // This project's table as it was before sso_key, with an SSO session and a local one in it.
  await db.pool.query(`CREATE TABLE sessions (
    session_id varchar(128) COLLATE utf8mb4_bin NOT NULL, expires int(11) unsigned NOT NULL, data mediumtext COLLATE utf8mb4_bin,
    user_key char(43) CHARACTER SET ascii COLLATE ascii_bin NULL, PRIMARY KEY (session_id), KEY idx_expires (expires), KEY idx_user_key (user_key)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`)
  const expires = Math.round(Date.now() / 1000) + 3600
  const cookie = { originalMaxAge: 3600000, expires: new Date(expires * 1000).toISOString() }
  const sso = { cookie, user: { name: 'ann', sub: 'ann', iss: 'https://idp.example' }, sso: { idToken: 'id', accessToken: 'access', sid: 'login-1' } }
  const local = { cookie, user: { name: 'ann' }, state: { note: 'mentions "sid" in its text' } }
  await db.pool.query('INSERT INTO sessions (session_id, expires, data) VALUES (?, ?, ?), (?, ?, ?)', ['sso-session', expires, JSON.stringify(sso), 'local-session', expires, JSON.stringify(local)])
  const app = await build(t, db.env)
  await app.inject({ url: '/health/ready' })
  const [rows] = await db.pool.query<RowDataPacket[]>('SELECT session_id, sso_key FROM sessions ORDER BY session_id')
  t.same(rows.map((row) => [row.session_id, row.sso_key]), [['local-session', null], ['sso-session', providerLoginKey('https://idp.example', 'login-1')]])
  t.equal(await app.sessionStore.endSessionsOfProviderLogin('https://idp.example', 'login-1'), 1)
  t.equal(await countRows(db), 1, 'the local session stays')
})
