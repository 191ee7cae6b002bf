import t from 'tap'
import { Client, serve, type HttpResponse } from './helper.js'
import { loginAs, writeUsersFile } from './support/accounts.js'

const users = { ann: 'correct horse' }

// An error answer of a session route may carry a user's data too (a 401 after logout, a 413 for a
// state), and a shared cache must keep none of them: every one is `no-store`, whichever hook or
// handler raised it.
t.test('every error answer of a session route is Cache-Control: no-store', async (t) => {
  const { base, client, db } = await serve(t, { AUTH_USERS_FILE: writeUsersFile(t, users) }, {
    sessionRoutes: async (scope) => {
      scope.get('/session/fails', async () => { throw new Error('an unexpected failure') })
    }
  })
  t.equal((await loginAs(client, 'ann', users.ann)).status, 200)
  const state = (body: unknown, headers: Record<string, string> = {}) => client.request('/session/state', { method: 'PUT', body, headers })
  const stranger = new Client(base)
  const failedLogins = async () => {
    let res: HttpResponse | undefined
    for (let attempt = 0; attempt < 6; attempt++) res = await loginAs(stranger, 'nobody', 'wrong')
    return res as HttpResponse
  }

  const cases: Array<[number, string, () => Promise<HttpResponse>]> = [
    [400, 'a body that is not JSON', () => state('{"a":')],
    [400, 'a malformed %-escape in the query (refused by @fastify/express before the session loads)', () => client.request('/session/all?x=%')],
    [401, 'anonymous on a logged-in route', () => stranger.request('/session/all')],
    [403, 'a cross-site logout (the guard runs before the session loads)', () => client.request('/session/logout', { method: 'POST', headers: { origin: 'https://evil.example' } })],
    [404, 'an unknown session handle', () => client.request('/session/all/not-a-handle', { method: 'DELETE' })],
    [413, 'a state over the limit', () => state(JSON.stringify('x'.repeat(65536)))],
    [415, 'a form body', () => state('a=1', { 'content-type': 'application/x-www-form-urlencoded' })],
    [429, 'failed logins over the limit', failedLogins],
    [500, 'an unexpected failure in a route', () => client.request('/session/fails')]
  ]
  for (const [status, label, send] of cases) {
    const res = await send()
    t.equal(res.status, status, label)
    t.equal(res.headers['cache-control'], 'no-store', `${status}: ${label}`)
  }

  // The store fails: while loading the session (a cookie) and while saving a new one (none).
  await db.pool.query('RENAME TABLE sessions TO sessions_away')
  for (const [label, who] of [['loading the session fails', client], ['saving a new session fails', new Client(base)]] as const) {
    const res = await who.request('/session')
    t.equal(res.status, 503, label)
    t.equal(res.headers['cache-control'], 'no-store', `503: ${label}`)
  }
})
