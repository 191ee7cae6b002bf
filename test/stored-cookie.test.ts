import type { RowDataPacket } from 'mysql2/promise'
import t from 'tap'
import { baseEnv, build, Client, createTestDatabase, httpRequest, insertSessionRow, listen, serve } from './helper.js'
import { signedCookie } from './support/signed-cookie.js'

// Cookie attributes come from the configuration only (SECURITY 26): never from a stored row, whose
// `cookie` field express-session would otherwise copy into every cookie it sends for the session.

const attributesOf = (setCookie: string) => setCookie.split(';').slice(1).map((part) => part.trim().split('=')[0]?.toLowerCase())

t.test('an edited row cannot add Domain, drop HttpOnly or inject a header through the cookie it renews', async (t) => {
  // The stored expiry lags by more than SESSION_TOUCH_AFTER, so the server renews the cookie now.
  const { db, base } = await serve(t, { SESSION_TOUCH_AFTER: '1000' })
  const expires = new Date(Date.now() + 3600000).toISOString()
  const edited = {
    cookie: { originalMaxAge: 10 * 365 * 24 * 3600000, expires, httpOnly: false, domain: 'evil.example', path: '/\r\nX-Injected: 1', sameSite: 'none', secure: false, priority: 'high', partitioned: true },
    createdAt: Date.now(),
    state: { kept: true }
  }
  await insertSessionRow(db, 'edited', edited)
  const res = await httpRequest(`${base}/session`, { headers: { cookie: signedCookie('edited', baseEnv.SESSION_SECRET as string) } })
  t.equal(res.status, 200)
  t.same(res.json().state, { kept: true }, 'the session itself is read')
  t.notOk(res.headers['x-injected'], 'no header injected')
  const setCookie = [res.headers['set-cookie'] ?? []].flat().find((cookie) => cookie.startsWith('sid=')) ?? ''
  t.match(setCookie, /^sid=s%3Aedited\./, 'the cookie is sent again, for the same session')
  t.same(attributesOf(setCookie).sort(), ['expires', 'httponly', 'max-age', 'path', 'samesite'], 'only the configured attributes')
  t.match(setCookie, /; Path=\/(;|$)/)
  t.match(setCookie, /; SameSite=Lax/)
  t.notMatch(setCookie, /Domain|Priority|Partitioned|[\r\n]/i)
  t.ok(Math.abs(Date.parse(/Expires=([^;]+)/.exec(setCookie)?.[1] ?? '') - (Date.now() + 2628000000)) < 5000, 'no longer than SESSION_MAX_AGE, whatever the stored originalMaxAge')
})

t.test('tightening SESSION_COOKIE_SAMESITE reaches existing sessions at their next request, once', async (t) => {
  const db = await createTestDatabase(t)
  const before = await build(t, { ...db.env, SESSION_COOKIE_SAMESITE: 'lax' })
  const client = new Client(await listen(before))
  const created = await client.request('/session/state', { method: 'PUT', body: { cart: 3 } })
  t.match(String(created.headers['set-cookie']), /SameSite=Lax/)
  await before.close()

  const after = await build(t, { ...db.env, SESSION_COOKIE_SAMESITE: 'strict' })
  const moved = new Client(await listen(after))
  moved.cookie = client.cookie
  const first = await moved.request('/session')
  t.same(first.json().state, { cart: 3 }, 'the same session')
  t.match(String(first.headers['set-cookie']), /^sid=.*SameSite=Strict/, 'sent again with the new attribute')
  const second = await moved.request('/session')
  t.notOk(second.headers['set-cookie'], 'once: the row now holds the configured attributes')
})

t.test('SameSite=None with SESSION_COOKIE_SECURE=auto: Lax over plain HTTP (browsers drop None without Secure), None over HTTPS', async (t) => {
  const { base } = await serve(t, { SESSION_COOKIE_SAMESITE: 'none', SESSION_COOKIE_SECURE: 'auto', TRUST_PROXY: '127.0.0.1' })
  const plain = [(await httpRequest(`${base}/session`)).headers['set-cookie'] ?? []].flat()[0] ?? ''
  t.match(plain, /SameSite=Lax/)
  t.notMatch(plain, /Secure/)
  const https = [(await httpRequest(`${base}/session`, { headers: { 'x-forwarded-proto': 'https' } })).headers['set-cookie'] ?? []].flat()[0] ?? ''
  t.match(https, /SameSite=None/)
  t.match(https, /; Secure/)
})

t.test('stored cookie keys express-session would copy onto its Cookie (a maxAge that is not a number, a serialize) are ignored', async (t) => {
  const { db, base } = await serve(t, { SESSION_TOUCH_AFTER: '1000' })
  for (const [id, extra] of [['bad-max-age', { maxAge: 'x' }], ['shadowed-serialize', { serialize: 1, data: 2 }]] as const) {
    const stored = { cookie: { originalMaxAge: 3600000, expires: new Date(Date.now() + 3600000).toISOString(), ...extra }, createdAt: Date.now(), state: { id } }
    await insertSessionRow(db, id, stored)
    const res = await httpRequest(`${base}/session`, { headers: { cookie: signedCookie(id, baseEnv.SESSION_SECRET as string) } })
    t.equal(res.status, 200, `${id}: 200`)
    t.same(res.json().state, { id }, `${id}: the session is read`)
  }
})

t.test('logout with SameSite=None and SESSION_COOKIE_SECURE=auto over plain HTTP clears the cookie with a SameSite browsers keep', async (t) => {
  const { client } = await serve(t, { SESSION_COOKIE_SAMESITE: 'none', SESSION_COOKIE_SECURE: 'auto' })
  await client.request('/session')
  const res = await client.request('/session/logout', { method: 'POST' })
  t.equal(res.status, 204)
  t.match(String(res.headers['set-cookie']), /^sid=; .*Max-Age=0; HttpOnly; SameSite=Lax$/)
})

t.test('the stored lifetime does not shrink when the clock ticks while the bridge renews the cookie', async (t) => {
  const { db, client } = await serve(t)
  t.equal((await client.request('/session/state', { method: 'PUT', body: { n: 0 } })).status, 200)
  // Every reading of the clock a millisecond after the one before, during one save: express-session
  // derives the cookie's originalMaxAge from two readings.
  const realNow = Date.now
  let now = realNow()
  Date.now = () => ++now
  let status: number
  try {
    status = (await client.request('/session/state', { method: 'PUT', body: { n: 1 } })).status
  } finally {
    Date.now = realNow
  }
  t.equal(status, 200)
  const [rows] = await db.pool.query<RowDataPacket[]>('SELECT data FROM sessions')
  t.equal(JSON.parse(String(rows[0]?.data)).cookie.originalMaxAge, 2628000000, 'SESSION_MAX_AGE exactly, as configured')
})
