import type { RowDataPacket } from 'mysql2/promise'
import t from 'tap'
import { userKey } from '../src/session/identity.js'
import { baseEnv, build, Client, createJsonDataTable, createTestDatabase, httpRequest, inAnHour, insertSessionRow, listen, serve } from './helper.js'
import { loginAs, writeUsersFile } from './support/accounts.js'
import { signedCookie } from './support/signed-cookie.js'

// Every session of a user is found through the user key the store writes on every save, whatever
// else the session holds (SECURITY 25), and a user is (issuer, subject), not a name (SECURITY 31).

const users = { ann: 'correct horse', bob: 'battery staple' }
// MariaDB's JSON_VALUE answers NULL, without a warning, for a lone surrogate escape or about 31
// levels of nesting anywhere before the path it looks for: the old generated user column did.
const nested = (depth: number, inner: string): string => depth === 0 ? inner : `{"a":${nested(depth - 1, inner)}}`
const hidingState = `{"hide":"\\ud800","deep":${nested(28, '1')}}`

async function loggedIn (base: string, name: keyof typeof users, state?: string): Promise<Client> {
  const client = new Client(base)
  if (state) t.equal((await client.request('/session/state', { method: 'PUT', body: state })).status, 200, 'state stored before login')
  const res = await loginAs(client, name, users[name])
  if (res.status !== 200) throw new Error(`login as ${name}: ${res.status}`)
  return client
}

t.test('a session whose state MariaDB\'s JSON functions cannot read is still listed and revocable', async (t) => {
  const { base, app } = await serve(t, { AUTH_USERS_FILE: writeUsersFile(t, users) })
  const hidden = await loggedIn(base, 'ann', hidingState)
  const laptop = await loggedIn(base, 'ann')
  t.equal((await laptop.request('/session/all')).json().length, 2, 'the list shows both of ann\'s sessions')
  t.equal((await app.sessionStore.sessionsOf({ name: 'ann' })).length, 2, 'so does the store (npm run sessions -- list-user)')
  t.same((await laptop.request('/session/all', { method: 'DELETE' })).json(), { revoked: 1 }, 'ending the others ends it')
  t.same((await hidden.request('/session')).json().authenticated, false, 'its cookie is anonymous now')
})

t.test('an htpasswd user and a provider\'s user of the same name are different users', async (t) => {
  t.not(userKey({ name: 'ann' }), userKey({ name: 'ann', iss: 'https://idp.example', sub: 'ann' }))
  t.not(userKey({ name: 'ann', iss: 'https://idp.example', sub: '1' }), userKey({ name: 'ann', iss: 'https://other.example', sub: '1' }))
  t.equal(userKey({ name: 'shown name', iss: 'https://idp.example', sub: '1' }), userKey({ name: 'renamed', iss: 'https://idp.example', sub: '1' }), 'the name is for display only')
})

const cookie = () => ({ originalMaxAge: 3600000, expires: new Date(Date.now() + 3600000).toISOString(), httpOnly: true, path: '/' })

t.test('a table with the old JSON_VALUE user column is upgraded: the column replaced, every row keyed, from several instances at once', async (t) => {
  const db = await createTestDatabase(t)
  await db.pool.query(`CREATE TABLE sessions (
    session_id varchar(128) COLLATE utf8mb4_bin NOT NULL,
    expires int(11) unsigned NOT NULL,
    data mediumtext COLLATE utf8mb4_bin,
    user_name varchar(255) COLLATE utf8mb4_bin AS (JSON_VALUE(data, '$.user.name')) VIRTUAL,
    PRIMARY KEY (session_id), KEY idx_expires (expires), KEY idx_user_name (user_name)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`)
  const rows: Array<[string, object | string]> = [
    ['ann-visible', { cookie: cookie(), createdAt: Date.now(), user: { name: 'ann' } }],
    ['ann-hidden', `{"cookie":${JSON.stringify(cookie())},"createdAt":${Date.now()},"state":${hidingState},"user":{"name":"ann"}}`],
    ['bob', { cookie: cookie(), createdAt: Date.now(), user: { name: 'bob' } }],
    ['anonymous', { cookie: cookie(), createdAt: Date.now(), state: { user: 'not a login' } }]
  ]
  for (const [id, data] of rows) {
    await insertSessionRow(db, id, data)
  }
  const [before] = await db.pool.query<RowDataPacket[]>("SELECT session_id FROM sessions WHERE user_name = 'ann'")
  t.same(before.map((row) => row.session_id), ['ann-visible'], 'the fixture: JSON_VALUE hides one of ann\'s sessions')

  const apps = await Promise.all([1, 2, 3].map(() => build(t, db.env)))
  await Promise.all(apps.map((app) => app.inject({ url: '/health/ready' })))
  // Listed at once, before the background keying has necessarily run: unkeyed rows are checked too.
  t.same((await apps[0]!.sessionStore.sessionsOf({ name: 'ann' })).map((session) => session.id).sort(), ['ann-hidden', 'ann-visible'])
  const [columns] = await db.pool.query<RowDataPacket[]>(
    'SELECT column_name AS name FROM information_schema.columns WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position', [db.name, 'sessions'])
  t.same(columns.map((column) => column.name), ['session_id', 'expires', 'data', 'user_name', 'user_key', 'sso_key'], 'the old column stays for old instances in a rolling upgrade')
  const keys = async () => Object.fromEntries((await db.pool.query<RowDataPacket[]>('SELECT session_id, user_key FROM sessions'))[0].map((row) => [row.session_id, row.user_key]))
  for (let tries = 0; tries < 50 && Object.values(await keys()).includes(null); tries++) await new Promise((resolve) => setTimeout(resolve, 100))
  t.same(await keys(), {
    'ann-hidden': userKey({ name: 'ann' }),
    'ann-visible': userKey({ name: 'ann' }),
    anonymous: '',
    bob: userKey({ name: 'bob' })
  }, 'every row keyed in the background')
  t.same((await apps[0]!.sessionStore.endSessionsOf({ name: 'ann' })), 2, 'both of ann\'s sessions end')
  for (const app of apps) await app.close()
  await (await build(t, db.env)).close()
  t.equal((await db.pool.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM sessions'))[0][0]?.n, 2, 'a start on an upgraded table changes nothing')
})

t.test('a large upgraded table is keyed in the background: requests are served meanwhile', async (t) => {
  const db = await createTestDatabase(t)
  await (await build(t, db.env)).close()
  const rows = Array.from({ length: 20000 }, (_, i) => [`old-${i}`, inAnHour(), JSON.stringify({ cookie: cookie(), createdAt: Date.now(), user: { name: `user${i % 100}` } })])
  await db.pool.query('INSERT INTO sessions (session_id, expires, data) VALUES ?', [rows])
  const app = await build(t, db.env)
  const client = new Client(await listen(app))
  const started = Date.now()
  const res = await client.request('/session')
  t.equal(res.status, 200, 'served while 20,000 rows wait for their key')
  t.ok(Date.now() - started < 1000, `answered in ${Date.now() - started} ms`)
  t.equal((await app.sessionStore.sessionsOf({ name: 'user7' })).length, 200, 'a user\'s sessions are all listed, keyed or not')
  for (let tries = 0; tries < 100; tries++) {
    const [[left]] = await db.pool.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM sessions WHERE user_key IS NULL')
    if (Number(left?.n) === 0) break
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  const [[unkeyed]] = await db.pool.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM sessions WHERE user_key IS NULL')
  t.equal(Number(unkeyed?.n), 0, 'and then keyed')
})

t.test('rows an Express app writes are checked against their data: a user switched in place is neither listed nor ended for the old one', async (t) => {
  const { db, app } = await serve(t)
  await app.sessionStore.countLive()
  const write = async (id: string, name: string, key: string | null) => {
    await db.pool.query('REPLACE INTO sessions (session_id, expires, data, user_key) VALUES (?, ?, ?, ?)',
      [id, inAnHour(), JSON.stringify({ cookie: cookie(), createdAt: Date.now(), user: { name } }), key])
  }
  // express-mysql-session's upsert leaves user_key as it was: ann's row now holds bob.
  await write('switched', 'bob', userKey({ name: 'ann' }))
  await write('anns', 'ann', userKey({ name: 'ann' }))
  t.same((await app.sessionStore.sessionsOf({ name: 'ann' })).map((session) => session.id), ['anns'], 'not listed for ann')
  t.equal(await app.sessionStore.endSessionsOf({ name: 'ann' }), 1, 'ann ends only her own')
  await new Promise((resolve) => setTimeout(resolve, 200)) // the listing repaired the row's key
  t.same((await app.sessionStore.sessionsOf({ name: 'bob' })).map((session) => session.id), ['switched'], 'listed for bob')
})

t.test('a row written without its user key (an Express app on the same table) is keyed when it is read', async (t) => {
  const { db, base, app } = await serve(t)
  await app.sessionStore.countLive()
  await insertSessionRow(db, 'from-express', { cookie: cookie(), createdAt: Date.now(), user: { name: 'ann' } })
  const res = await httpRequest(`${base}/session`, { headers: { cookie: signedCookie('from-express', baseEnv.SESSION_SECRET as string) } })
  t.match(res.json(), { authenticated: true, user: { name: 'ann' } })
  t.same((await app.sessionStore.sessionsOf({ name: 'ann' })).map((session) => session.id), ['from-express'])
})

t.test('a JSON data column (express-mysql-session documents one) reads and writes; no row is deleted for its type', async (t) => {
  const db = await createTestDatabase(t)
  await createJsonDataTable(db)
  const stored = { cookie: cookie(), createdAt: Date.now(), user: { name: 'ann' }, state: { cart: [1, 2] } }
  await insertSessionRow(db, 'json-row', stored)
  const app = await build(t, { ...db.env, AUTH_USERS_FILE: writeUsersFile(t, users) })
  const client = new Client(await listen(app))
  client.cookie = signedCookie('json-row', baseEnv.SESSION_SECRET as string)
  t.match((await client.request('/session')).json(), { authenticated: true, user: { name: 'ann' }, state: { cart: [1, 2] } }, 'read back')
  t.equal((await client.request('/session/state', { method: 'PUT', body: { cart: [3] } })).status, 200, 'written')
  t.same((await client.request('/session')).json().state, { cart: [3] }, 'and read back again')
  t.equal((await app.sessionStore.sessionsOf({ name: 'ann' })).length, 1, 'listed for its user')
  t.equal((await client.request('/session/state', { method: 'PUT', body: '['.repeat(30) + ']'.repeat(30) })).status, 200, 'the deepest state allowed fits the JSON column')
  const refused = await client.request('/session/state', { method: 'PUT', body: '{"x":"\\ud800"}' })
  t.equal(refused.status, 400, 'a lone surrogate, which MariaDB\'s JSON check refuses, is the client\'s 400, not a 503')
  t.notOk(refused.headers['set-cookie'], 'and sets no cookie')
  t.match((await client.request('/session')).json(), { authenticated: true }, 'the session is still there')
  const fresh = new Client(client.base)
  await loginAs(fresh, 'bob', users.bob)
  t.match((await fresh.request('/session')).json(), { authenticated: true, user: { name: 'bob' } }, 'a new session in a JSON column')
  const [[row]] = await db.pool.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM sessions WHERE session_id = ?', ['json-row'])
  t.equal(Number(row?.n), 1, 'the row is still there')
})
