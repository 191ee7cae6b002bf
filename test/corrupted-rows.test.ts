import t, { type Test } from 'tap'
import { baseEnv, httpRequest, serve, sessionCookie } from './helper.js'
import { WARN, captureLog } from './support/log-capture.js'
import { sessionIdOf, signedCookie } from './support/signed-cookie.js'

// Rows written straight into the table, as a bug, a manual edit or another app might leave them,
// then asked for with a correctly signed cookie: the signature is fine, the data is not.

const inAnHour = () => Math.floor(Date.now() / 1000) + 3600
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
  ['a user that is a string', JSON.stringify({ cookie, createdAt: 1, user: 'ann' })],
  ['a user without a name', JSON.stringify({ cookie, createdAt: 1, user: { id: 7 } })],
  ['a createdAt that is a word', JSON.stringify({ cookie, createdAt: 'yesterday', user })],
  ['a createdAt beyond the date range', JSON.stringify({ cookie, createdAt: 1e300, user })],
  ['an originalMaxAge that is not a number', JSON.stringify({ cookie: { ...cookie, originalMaxAge: 'x' }, user })],
  ['a cookie expiry beyond the date range', JSON.stringify({ cookie: { ...cookie, expires: 1e300 }, user })],
  ['a userAgent that is an object', JSON.stringify({ cookie, createdAt: 1, user, userAgent: { evil: true } })],
  ['a state nested 20,000 levels deep', `{"cookie":${JSON.stringify(cookie)},"createdAt":1,"state":${'['.repeat(20000)}${']'.repeat(20000)}}`]
]

async function setUp (t: Test) {
  const log = captureLog()
  const { db, base } = await serve(t, { LOG_LEVEL: 'warn' }, { logger: log.logger })
  /** Stores `data` under a new id, then asks for it with that id's signed cookie. */
  const visit = async (id: string, data: string | null, expires = inAnHour()) => {
    await db.pool.query('INSERT INTO sessions (session_id, expires, data) VALUES (?, ?, ?)', [id, expires, data])
    const logged = log.entries().length
    const res = await httpRequest(`${base}/session`, { headers: { cookie: signedCookie(id, baseEnv.SESSION_SECRET as string) } })
    return { res, warnings: log.entries(logged).filter((entry) => entry.level >= WARN), issued: sessionIdOf(sessionCookie(res.headers['set-cookie'])) }
  }
  const rowExists = async (id: string) => {
    const [rows] = await db.pool.query('SELECT 1 FROM sessions WHERE session_id = ?', [id])
    return (rows as unknown[]).length > 0
  }
  return { visit, rowExists }
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

// Not corruption: an expired session is routine (the cleanup removes it later), so no warning.
t.test('a row past its expiry gives a fresh anonymous session, without a warning', async (t) => {
  const { visit } = await setUp(t)
  const { res, warnings, issued } = await visit('expired', JSON.stringify({ cookie, createdAt: 1, user }), Math.floor(Date.now() / 1000) - 1)
  t.equal(res.status, 200)
  t.same(res.json().authenticated, false)
  t.ok(issued !== undefined && issued !== 'expired', 'a new session id')
  t.same(warnings, [])
})
