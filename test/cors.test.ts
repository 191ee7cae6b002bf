import type { IncomingHttpHeaders } from 'node:http'
import t from 'tap'
import { build, countRows, httpRequest, listen, serve } from './helper.js'
import { writeUsersFile } from './support/accounts.js'
import { freePort } from './support/private-mariadb.js'

// Over real HTTP: the session routes sit behind the Express bridge, which inject() does not survive.

const FRONTEND = 'http://localhost:5173'
const preflight = (method: string) => ({
  method: 'OPTIONS',
  headers: { origin: FRONTEND, 'access-control-request-method': method, 'access-control-request-headers': 'content-type' }
})
const corsHeadersOf = (headers: IncomingHttpHeaders) => Object.keys(headers).filter((name) => name.startsWith('access-control-'))

t.test('a listed origin: the preflight is answered with credentials allowed, and creates no session', async (t) => {
  const { base, db } = await serve(t, { CORS_ORIGINS: `https://app.example.com, ${FRONTEND}` })
  for (const [path, method] of [['/session/login', 'POST'], ['/session/state', 'PUT'], ['/session/all/some-handle', 'DELETE']] as const) {
    const res = await httpRequest(`${base}${path}`, preflight(method))
    t.equal(res.status, 204, `${method} ${path}`)
    t.match(res.headers, {
      'access-control-allow-origin': FRONTEND,
      'access-control-allow-credentials': 'true',
      'access-control-allow-headers': 'Content-Type',
      'access-control-max-age': '600',
      vary: /Origin/
    })
    t.ok(String(res.headers['access-control-allow-methods']).split(', ').includes(method), `allows ${method}`)
    t.notOk(res.headers['set-cookie'], 'no cookie')
  }
  t.equal(await countRows(db), 0, 'no session row for a preflight')

  const res = await httpRequest(`${base}/session`, { headers: { origin: FRONTEND } })
  t.equal(res.status, 200)
  t.match(res.headers, { 'access-control-allow-origin': FRONTEND, 'access-control-allow-credentials': 'true', 'access-control-expose-headers': 'Retry-After' })
  t.ok(res.headers['set-cookie'], 'the actual request gets its session')
})

t.test('an unlisted origin, or none, gets no CORS header at all', async (t) => {
  const { base, db } = await serve(t, { CORS_ORIGINS: FRONTEND })
  for (const origin of ['http://localhost:5174', 'https://localhost:5173', 'http://evil.example', 'null']) {
    const refused = await httpRequest(`${base}/session/login`, { ...preflight('POST'), headers: { ...preflight('POST').headers, origin } })
    t.equal(refused.status, 404, `preflight from ${origin}`)
    t.same(corsHeadersOf(refused.headers), [], `no CORS header for ${origin}`)
    t.notOk(refused.headers['set-cookie'])

    const simple = await httpRequest(`${base}/session`, { headers: { origin } })
    t.equal(simple.status, 200, 'the server answers; the browser is what keeps the page from reading it')
    t.same(corsHeadersOf(simple.headers), [])
  }
  t.same(corsHeadersOf((await httpRequest(`${base}/session`)).headers), [], 'no Origin header, no CORS header')
  t.equal(await countRows(db), 5, 'a row for each GET /session, none for a preflight')
})

t.test('without CORS_ORIGINS no origin gets CORS headers', async (t) => {
  const { base } = await serve(t)
  const res = await httpRequest(`${base}/session/login`, preflight('POST'))
  t.equal(res.status, 404)
  t.same(corsHeadersOf(res.headers), [])
  t.same(corsHeadersOf((await httpRequest(`${base}/session`, { headers: { origin: FRONTEND } })).headers), [])
})

t.test('error answers of session routes carry the CORS headers (a browser hides them otherwise)', async (t) => {
  const cors = { 'access-control-allow-origin': FRONTEND, 'access-control-allow-credentials': 'true' }
  const { base } = await serve(t, { CORS_ORIGINS: FRONTEND })
  const anonymous = await httpRequest(`${base}/session/all`, { headers: { origin: FRONTEND } })
  t.equal(anonymous.status, 401)
  t.match(anonymous.headers, cors, '401')

  const secure = await serve(t, { CORS_ORIGINS: FRONTEND, SESSION_COOKIE_SECURE: 'true', AUTH_USERS_FILE: writeUsersFile(t, { ann: 'correct horse' }) })
  const plainHttp = await httpRequest(`${secure.base}/session/login`, { method: 'POST', headers: { origin: FRONTEND }, body: { username: 'ann', password: 'correct horse' } })
  t.equal(plainHttp.status, 403)
  t.match(plainHttp.headers, cors, '403')

  const down = await build(t, { CORS_ORIGINS: FRONTEND, SESSION_HOST: '127.0.0.1', SESSION_PORT: String(await freePort()), SESSION_USER: 'root', SESSION_DATABASE: 'mysql' })
  const unavailable = await httpRequest(`${await listen(down)}/session`, { headers: { origin: FRONTEND } })
  t.equal(unavailable.status, 503)
  t.match(unavailable.headers, { ...cors, 'access-control-expose-headers': 'Retry-After', 'retry-after': '5' }, '503, with a Retry-After the frontend may read')
})
