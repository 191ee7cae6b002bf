import t from 'tap'
import { build, countRows, serve, sessionCookie } from './helper.js'

t.test('the session cookie carries the configured attributes and nothing more', async (t) => {
  const { client } = await serve(t, { SESSION_COOKIE_SECURE: 'true', TRUST_PROXY: '127.0.0.1' })
  const res = await client.request('/session', { headers: { 'x-forwarded-proto': 'https' } })
  t.equal(res.status, 200)
  const setCookie = String(res.headers['set-cookie'])
  t.match(setCookie, /^sid=s%3A[A-Za-z0-9_-]{32}\.[^;]+;/, 'named sid (not connect.sid), signed, a 192-bit id')
  t.match(setCookie, /; Path=\//)
  t.match(setCookie, /; HttpOnly/)
  t.match(setCookie, /; Secure/)
  t.match(setCookie, /; SameSite=Lax/)
  t.notMatch(setCookie, /Domain=/i)
  const expires = Date.parse(/Expires=([^;]+)/.exec(setCookie)?.[1] ?? '')
  t.ok(Math.abs(expires - (Date.now() + 2628000000)) < 5000, 'expires SESSION_MAX_AGE (about 30 days) from now')
  t.match(setCookie, /; Max-Age=2628000(;|$)/, 'Max-Age from SESSION_MAX_AGE, in seconds')
  t.equal(res.headers['cache-control'], 'no-store')
})

t.test('SameSite, Secure, the name and the lifetime follow their variables', async (t) => {
  const { client } = await serve(t, { SESSION_COOKIE_SAMESITE: 'strict', SESSION_COOKIE_NAME: 'app.sid', SESSION_MAX_AGE: '60000' })
  const res = await client.request('/session')
  const setCookie = String(res.headers['set-cookie'])
  t.match(setCookie, /^app\.sid=/)
  t.match(setCookie, /; SameSite=Strict/)
  t.notMatch(setCookie, /Secure/)
  const expires = Date.parse(/Expires=([^;]+)/.exec(setCookie)?.[1] ?? '')
  t.ok(Math.abs(expires - (Date.now() + 60000)) < 5000)
  t.match(setCookie, /; Max-Age=60(;|$)/)
})

t.test('the response never carries the session id', async (t) => {
  const { client } = await serve(t)
  const res = await client.request('/session')
  const id = decodeURIComponent(client.cookie ?? '').slice('sid=s:'.length).split('.')[0] as string
  t.equal(id.length, 32)
  t.notOk(res.body.includes(id))
  t.same(Object.keys(res.json()).sort(), ['authenticated', 'createdAt', 'expiresAt', 'state'])
  t.equal(res.json().authenticated, false)
})

t.test('a returning client keeps its session; the cookie is renewed when the stored expiry is', async (t) => {
  const { client, db } = await serve(t, { SESSION_MAX_AGE: '600000', SESSION_TOUCH_AFTER: '2000' })
  const first = await client.request('/session')
  const cookie = client.cookie
  const again = await client.request('/session')
  t.equal(again.json().createdAt, first.json().createdAt, 'the same session')
  t.notOk(again.headers['set-cookie'], 'nothing to renew yet: no Set-Cookie')
  t.equal(await countRows(db), 1)

  await new Promise((resolve) => setTimeout(resolve, 2100))
  const later = await client.request('/session')
  const setCookie = String(later.headers['set-cookie'])
  t.equal(sessionCookie(later.headers['set-cookie']), cookie, 'the same id, signed as express-session signs it')
  const expires = Date.parse(/Expires=([^;]+)/.exec(setCookie)?.[1] ?? '')
  t.ok(Math.abs(expires - (Date.now() + 600000)) < 3000, 'Expires restarts from this request')
  t.match(setCookie, /; Max-Age=600(;|$)/, 'Max-Age as on every session cookie')
  t.match(setCookie, /; HttpOnly/)
  t.equal((await client.request('/session')).json().createdAt, first.json().createdAt, 'the renewed cookie reads the same session')
  const [[row]] = await db.pool.query<import('mysql2').RowDataPacket[]>('SELECT expires FROM sessions')
  t.ok(Math.abs(Number(row?.expires) * 1000 - expires) < 2000, 'the row expires with the cookie')
})

t.test('a changed session gets its cookie renewed at once', async (t) => {
  const { client } = await serve(t, { SESSION_MAX_AGE: '600000', SESSION_TOUCH_AFTER: '60000' })
  await client.request('/session')
  const res = await client.request('/session/state', { method: 'PUT', body: { theme: 'dark' } })
  t.equal(res.status, 200)
  t.ok(res.headers['set-cookie'], 'Set-Cookie with the write')
})

t.test('a Secure cookie of an "auto" session is not renewed over plain HTTP', async (t) => {
  const { client } = await serve(t, { SESSION_COOKIE_SECURE: 'auto', TRUST_PROXY: '127.0.0.1', SESSION_MAX_AGE: '600000', SESSION_TOUCH_AFTER: '1000' })
  const https = { 'x-forwarded-proto': 'https' }
  const created = await client.request('/session', { headers: https })
  t.match(String(created.headers['set-cookie']), /; Secure/)
  await new Promise((resolve) => setTimeout(resolve, 1100))
  const plain = await client.request('/session')
  t.equal(plain.status, 200)
  t.notOk(plain.headers['set-cookie'], 'never sent over plain HTTP')
  await new Promise((resolve) => setTimeout(resolve, 1100))
  const secure = await client.request('/session', { headers: https })
  t.match(String(secure.headers['set-cookie']), /; Secure/, 'renewed over HTTPS')
})

t.test('health routes sit outside the session: no cookie, no row', async (t) => {
  const { client, db } = await serve(t)
  for (const url of ['/health/live', '/health/ready']) {
    const res = await client.request(url)
    t.equal(res.status, 200, url)
    t.same(res.json(), { status: 'ok' })
    t.notOk(res.headers['set-cookie'], `${url} sets no cookie`)
  }
  t.equal(await countRows(db), 0)
})

t.test('saveUninitialized=false stores nothing for a visit that changes nothing', async (t) => {
  const { client, db } = await serve(t, { SESSION_SAVE_UNINITIALIZED: 'false' })
  const res = await client.request('/session')
  t.equal(res.status, 200)
  t.notOk(res.headers['set-cookie'])
  t.equal(await countRows(db), 0)
})

t.test('inject() works for routes outside the bridge', async (t) => {
  const app = await build(t)
  const res = await app.inject({ url: '/health/live' })
  t.same(res.json(), { status: 'ok' })
})
