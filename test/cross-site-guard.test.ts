import t from 'tap'
import { Client, countRows, serve } from './helper.js'
import { loginAs, writeUsersFile } from './support/accounts.js'

const users = { ann: 'correct horse' }
const frontend = 'http://localhost:5173'

t.test('a state-changing request from an unlisted origin is refused before the session is touched', async (t) => {
  const { client, base, db } = await serve(t, { AUTH_USERS_FILE: writeUsersFile(t, users), CORS_ORIGINS: frontend })
  t.equal((await loginAs(client, 'ann', users.ann)).status, 200)

  const evil = { origin: 'https://evil.example' }
  const logout = await client.request('/session/logout', { method: 'POST', headers: evil })
  t.equal(logout.status, 403)
  t.same(logout.json(), { statusCode: 403, error: 'Forbidden', message: 'Cross-site request refused: this origin is not in CORS_ORIGINS' })
  t.notOk(logout.headers['set-cookie'])
  t.equal((await client.request('/session')).json().authenticated, true, 'still logged in')

  for (const [method, path, body] of [['PUT', '/session/state', { x: 1 }], ['DELETE', '/session/all', undefined], ['POST', '/session/login', { username: 'ann', password: users.ann }]] as const) {
    t.equal((await client.request(path, { method, headers: evil, body })).status, 403, `${method} ${path}`)
  }
  const stranger = new Client(base)
  t.equal((await loginAs(stranger, 'ann', users.ann, evil)).status, 403, 'login CSRF: no session planted')
  t.equal(stranger.cookie, undefined)
  t.equal(await countRows(db), 1)
})

t.test('a foreign page\'s logout form is refused whatever it sends, Origin: null included', async (t) => {
  // The client sends its cookie along, as a browser does for a SameSite=None cookie on a cross-site
  // form POST (which needs no preflight).
  const { client, db } = await serve(t, { AUTH_USERS_FILE: writeUsersFile(t, users) })
  t.equal((await loginAs(client, 'ann', users.ann)).status, 200)
  // A sandboxed frame's form sends `Origin: null`.
  for (const origin of ['https://evil.example', 'null']) {
    for (const [type, body] of [['application/x-www-form-urlencoded', 'a=1'], ['text/plain', 'a=1'], ['multipart/form-data; boundary=x', '--x--\r\n']]) {
      const res = await client.request('/session/logout', { method: 'POST', body, headers: { origin, 'content-type': type } })
      t.equal(res.status, 403, `${origin}, ${type}`)
      t.notOk(res.headers['set-cookie'], 'the cookie is not cleared')
    }
  }
  t.equal((await client.request('/session')).json().authenticated, true, 'still logged in')
  t.equal(await countRows(db), 1, 'the session row is still there')
})

t.test('same origin, a listed origin, no Origin at all, and reads are let through', async (t) => {
  const { client, base } = await serve(t, { AUTH_USERS_FILE: writeUsersFile(t, users), CORS_ORIGINS: frontend })
  t.equal((await loginAs(client, 'ann', users.ann, { origin: base })).status, 200, 'the page itself')
  t.equal((await client.request('/session/state', { method: 'PUT', body: { a: 1 }, headers: { origin: frontend } })).status, 200, 'a listed frontend')
  t.equal((await client.request('/session', { headers: { origin: 'https://evil.example' } })).status, 200, 'GET is safe')
  t.equal((await client.request('/session/logout', { method: 'POST' })).status, 204, 'no Origin: not a browser')
})
