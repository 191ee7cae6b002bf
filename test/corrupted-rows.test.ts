import t, { type Test } from 'tap'
import type { RowDataPacket } from 'mysql2/promise'
import { userKey } from '../src/session/identity.js'
import { type AppOptions, baseEnv, build, httpRequest, inAnHour, insertSessionRow, serve, sessionCookie } from './helper.js'
import { WARN, captureLog } from './support/log-capture.js'
import { sessionIdOf, signedCookie } from './support/signed-cookie.js'

// Rows written straight into the table, as a bug, a manual edit or another app might leave them,
// then asked for with a correctly signed cookie: the signature is fine, the data is not.

const cookie = { originalMaxAge: 3600000, expires: new Date(Date.now() + 3600000).toISOString(), httpOnly: true, path: '/' }
const user = { name: 'ann' }

const corruptedRows: Array<[string, string | null]> = [
  ['not JSON', '{'],
  ['JSON null', 'null'],
  ['an empty object', '{}'],
  ['an array', '[]'],
  ['SQL NULL', null],
  ['no cookie field', JSON.stringify({ createdAt: 1, user })],
  ['a cookie that is not an object', JSON.stringify({ cookie: 'sid', user })],
  ['a cookie expiry that is not a date', JSON.stringify({ cookie: { ...cookie, expires: 'never' }, user })],
  ['a __proto__ key', `{"cookie":${JSON.stringify(cookie)},"__proto__":{"user":{"name":"admin"}}}`],
  ['a __proto__ key inside the cookie', '{"cookie":{"__proto__":{"secure":false},"originalMaxAge":3600000},"user":{"name":"ann"}}'],
  ['a __proto__ key spelled with a \\u escape', `{"cookie":${JSON.stringify(cookie)},"\\u005f_proto__":{"user":{"name":"admin"}}}`],
  ['constructor.prototype keys', `{"cookie":${JSON.stringify(cookie)},"constructor":{"prototype":{"user":{"name":"admin"}}}}`],
  // Rows that parse, with a field of the wrong type: each answered 500 on every request before.
  ['a createdAt that is a word', JSON.stringify({ cookie, createdAt: 'yesterday', user })],
  ['a createdAt beyond the date range', JSON.stringify({ cookie, createdAt: 1e300, user })],
  ['an originalMaxAge that is not a number', JSON.stringify({ cookie: { ...cookie, originalMaxAge: 'x' }, user })],
  ['a cookie expiry beyond the date range', JSON.stringify({ cookie: { ...cookie, expires: 1e300 }, user })],
  ['a userAgent that is an object', JSON.stringify({ cookie, createdAt: 1, user, userAgent: { evil: true } })],
  ['a state nested 20,000 levels deep', `{"cookie":${JSON.stringify(cookie)},"createdAt":1,"state":${'['.repeat(20000)}${']'.repeat(20000)}}`]
]

async function setUp (t: Test, options: AppOptions = {}) {
  const log = captureLog()
  const { db, base, app } = await serve(t, { LOG_LEVEL: 'warn' }, { ...options, logger: log.logger })
  /** Stores `data` under a new id, then asks for it with that id's signed cookie. */
  const visit = async (id: string, data: string | null, expires = inAnHour()) => {
    await insertSessionRow(db, id, data, expires)
    const logged = log.entries().length
    const res = await httpRequest(`${base}/session`, { headers: { cookie: signedCookie(id, baseEnv.SESSION_SECRET as string) } })
    return { res, warnings: log.entries(logged).filter((entry) => entry.level >= WARN), issued: sessionIdOf(sessionCookie(res.headers['set-cookie'])) }
  }
  const rowExists = async (id: string) => {
    const [rows] = await db.pool.query('SELECT 1 FROM sessions WHERE session_id = ?', [id])
    return (rows as unknown[]).length > 0
  }
  const storedUser = async (id: string) => {
    const [rows] = await db.pool.query<RowDataPacket[]>('SELECT data FROM sessions WHERE session_id = ?', [id])
    return JSON.parse(String(rows[0]?.data)).user as unknown
  }
  const storedKey = async (id: string) => {
    const [rows] = await db.pool.query<RowDataPacket[]>('SELECT user_key FROM sessions WHERE session_id = ?', [id])
    return rows[0]?.user_key as string | null
  }
  return { visit, rowExists, storedUser, storedKey, app, base, db }
}

t.test('the fixture itself: a well-formed row is read as the session it holds', async (t) => {
  const { visit } = await setUp(t)
  const { res, warnings, issued } = await visit('well-formed', JSON.stringify({ cookie, createdAt: 1, user }))
  t.equal(res.status, 200)
  t.match(res.json(), { authenticated: true, user })
  t.ok(issued === undefined || issued === 'well-formed', `no new session: the cookie is kept, or renewed with the same id (${issued})`)
  t.same(warnings, [])
})

t.test('a corrupted row gives a fresh anonymous session and one warning without the id; the row is left to expire', async (t) => {
  const { visit, rowExists } = await setUp(t)
  for (const [index, [label, data]] of corruptedRows.entries()) {
    const id = `corrupted-${index}`
    const { res, warnings, issued } = await visit(id, data)
    t.equal(res.status, 200, `${label}: 200`)
    t.same(res.json().authenticated, false, `${label}: anonymous`)
    t.ok(issued !== undefined && issued !== id, `${label}: a new session id`)
    t.equal(warnings.length, 1, `${label}: one warning`)
    t.match(warnings[0]?.msg, /fresh session/, `${label}: the warning says what happened`)
    t.notMatch(JSON.stringify(warnings), id, `${label}: the warning does not carry the id`)
    // Never deleted for what it holds: another app sharing the table (a migration) may read it.
    t.ok(await rowExists(id), `${label}: the row is kept until it expires`)
    const again = await visit(`${id}-again`, data)
    t.equal(again.res.status, 200, `${label}: still 200 the second time`)
  }
})

// Not corruption either: an earlier app's sessions (a migration from Express) keep their own user
// shape. Such a user is no login here unless the store's mapper finds one in the data (identity.ts),
// and a user the mapper finds is every store's, so a revocation of that user never misses it.
const otherShapes: Array<[string, unknown]> = [
  ['a user that is a string', 'ann'],
  ['a user without a name', { id: 7 }],
  ['a user whose name is not a string', { name: 7 }]
]

t.test('a user of another shape is kept as stored, without a warning, and is anonymous to the built-in routes', async (t) => {
  const { visit, rowExists, storedUser, storedKey, base } = await setUp(t)
  for (const [index, [label, user]] of otherShapes.entries()) {
    const id = `other-shape-${index}`
    const { res, warnings, issued } = await visit(id, JSON.stringify({ cookie, createdAt: 1, user }))
    t.equal(res.status, 200, `${label}: 200`)
    t.same(res.json().authenticated, false, `${label}: anonymous`)
    t.notOk(res.json().user, `${label}: no user shown`)
    t.ok(issued === undefined || issued === id, `${label}: the same session (${issued})`)
    t.same(warnings, [], `${label}: no warning`)
    t.ok(await rowExists(id), `${label}: the row is kept`)
    t.same(await storedUser(id), user, `${label}: its user unchanged`)
    t.equal(await storedKey(id), null, `${label}: its user key left unknown (NULL), not anonymous, for a process that can map it`)
    const list = await httpRequest(`${base}/session/all`, { headers: { cookie: signedCookie(id, baseEnv.SESSION_SECRET as string) } })
    t.equal(list.status, 401, `${label}: requireUser refuses it`)
  }
})

t.test('with a mapper, such a session is its user\'s: listed and revoked before anybody visits it, logged in when visited', async (t) => {
  const sessionUser = (data: Record<string, unknown>) => {
    const user = data.user as { id?: unknown } | string
    if (typeof user === 'string') return { name: user }
    return typeof user?.id === 'number' ? { name: `user${user.id}` } : undefined
  }
  const { visit, storedUser, app, rowExists } = await setUp(t, { sessionUser })
  await app.sessionStore.countLive()
  const insert = (id: string, user: unknown) => app.sessionStore.set(id, { cookie, createdAt: Date.now(), user } as never)
  // Written as another app would: through the store, which keys it with the mapper.
  await insert('seven-a', { id: 7, roles: ['admin'] })
  await insert('seven-b', { id: 7 })
  t.same((await app.sessionStore.sessionsOf({ name: 'user7' })).map((session) => session.id).sort(), ['seven-a', 'seven-b'], 'listed for the user it maps to')
  t.equal(await app.sessionStore.endSessionsOf({ name: 'user7' }, 'seven-a'), 1, 'revoked with the user\'s other sessions')
  t.notOk(await rowExists('seven-b'))
  // Cookie attributes as configured, so the read has nothing to rewrite (an outdated cookie is rewritten once).
  const { res, warnings } = await visit('mapped', JSON.stringify({ cookie: { ...cookie, secure: false, sameSite: 'lax' }, createdAt: 1, user: { id: 8, roles: ['x'] } }))
  t.match(res.json(), { authenticated: true, user: { name: 'user8' } }, 'logged in as the mapped user')
  t.same(warnings, [])
  t.same(await storedUser('mapped'), { id: 8, roles: ['x'] }, 'the stored user is left as it was: a read maps, it does not write the mapping')
  const unmapped = await visit('unmapped', JSON.stringify({ cookie, createdAt: 1, user: { id: 'x' } }))
  t.same(unmapped.res.json().authenticated, false, 'data the mapper does not recognize stays anonymous')
})

t.test('a process without the mapper never hides a mapped session from its user: it leaves the key unknown, not anonymous', async (t) => {
  const sessionUser = (data: Record<string, unknown>) => typeof (data.user as { id?: unknown })?.id === 'number' ? { name: `user${(data.user as { id: number }).id}` } : undefined
  const { app, db, storedKey } = await setUp(t, { sessionUser })
  await app.sessionStore.set('nine', { cookie, createdAt: Date.now(), user: { id: 9 } } as never)
  t.equal(await storedKey('nine'), userKey({ name: 'user9' }), 'keyed through the mapper')
  // An instance (or `npm run sessions`) without the mapper reads and cleans the same table.
  const plain = await build(t, db.env)
  t.same(await plain.sessionStore.sessionsOf({ name: 'user9' }), [], 'it does not know the user')
  await new Promise((resolve) => plain.sessionStore.get('nine', resolve))
  await plain.sessionStore.cleanupExpired()
  for (let tries = 0; tries < 20 && (await storedKey('nine')) !== null; tries++) await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(await storedKey('nine'), null, 'its repair makes the key unknown, never \'\'')
  t.same((await app.sessionStore.sessionsOf({ name: 'user9' })).map((session) => session.id), ['nine'], 'still listed by the instance with the mapper')
  t.equal(await app.sessionStore.endSessionsOf({ name: 'user9' }), 1, 'and revoked by it')
})

// Not corruption: an expired session is routine (the cleanup removes it later), so no warning.
t.test('a row past its expiry gives a fresh anonymous session, without a warning', async (t) => {
  const { visit } = await setUp(t)
  const { res, warnings, issued } = await visit('expired', JSON.stringify({ cookie, createdAt: 1, user }), Math.floor(Date.now() / 1000) - 1)
  t.equal(res.status, 200)
  t.same(res.json().authenticated, false)
  t.ok(issued !== undefined && issued !== 'expired', 'a new session id')
  t.same(warnings, [])
})
