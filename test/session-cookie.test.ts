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

t.test('a returning client keeps its session; each answer extends the cookie', async (t) => {
  const { client, db } = await serve(t)
  const first = await client.request('/session')
  const cookie = client.cookie
  const again = await client.request('/session')
  t.equal(again.json().createdAt, first.json().createdAt, 'the same session')
  t.equal(sessionCookie(again.headers['set-cookie']), cookie, 'the same id, cookie renewed (rolling)')
  t.equal(await countRows(db), 1)
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
