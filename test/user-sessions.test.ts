import { userKey } from '../src/session/identity.js'
import type { RowDataPacket } from 'mysql2/promise'
import { sign } from 'cookie-signature'
import t from 'tap'
import { requireUser, withUser } from '../src/auth/require-user.js'
import { Client, baseEnv, build, createTestDatabase, listen, serve } from './helper.js'
import { loginAs, writeUsersFile } from './support/accounts.js'

const users = { ann: 'correct horse', bob: 'battery staple' }
const idOf = (client: Client) => decodeURIComponent(client.cookie ?? '').replace(/^sid=s:/, '').split('.')[0] as string

async function loggedIn (base: string, name: keyof typeof users, userAgent = 'test'): Promise<Client> {
  const client = new Client(base)
  const res = await loginAs(client, name, users[name], { 'user-agent': userAgent })
  if (res.status !== 200) throw new Error(`login as ${name}: ${res.status}`)
  return client
}

t.test('a user lists their own sessions: opaque handles, the current one marked, nobody else\'s', async (t) => {
  const { base } = await serve(t, { AUTH_USERS_FILE: writeUsersFile(t, users) })
  const laptop = await loggedIn(base, 'ann', 'laptop')
  const phone = await loggedIn(base, 'ann', 'phone')
  const bob = await loggedIn(base, 'bob')

  const res = await laptop.request('/session/all')
  t.equal(res.status, 200)
  const list = res.json()
  t.equal(list.length, 2, 'ann has two sessions; bob\'s is not listed')
  t.same(list.map((entry: { userAgent: string }) => entry.userAgent), ['laptop', 'phone'], 'the current one first')
  t.same(list.map((entry: { current: boolean }) => entry.current), [true, false])
  for (const entry of list) {
    t.match(entry, { id: /^[A-Za-z0-9_-]{32}$/, ip: '127.0.0.1', createdAt: String, lastSeenAt: String })
    t.same(Object.keys(entry).sort(), ['createdAt', 'current', 'id', 'ip', 'lastSeenAt', 'userAgent'])
  }
  for (const client of [laptop, phone, bob]) t.notOk(res.body.includes(idOf(client)), 'no session id in the list')
  t.equal((await bob.request('/session/all')).json().length, 1)
})

t.test('ending one session, all others, and one\'s own', async (t) => {
  const { base } = await serve(t, { AUTH_USERS_FILE: writeUsersFile(t, users) })
  const laptop = await loggedIn(base, 'ann', 'laptop')
  const phone = await loggedIn(base, 'ann', 'phone')
  const bob = await loggedIn(base, 'bob')
  const phoneHandle = (await laptop.request('/session/all')).json().find((entry: { current: boolean }) => !entry.current).id

  t.equal((await bob.request(`/session/all/${phoneHandle}`, { method: 'DELETE' })).status, 404, 'bob cannot end ann\'s session')
  t.equal((await phone.request('/session')).json().authenticated, true)
  t.equal((await laptop.request('/session/all/not-a-handle', { method: 'DELETE' })).status, 404)

  t.equal((await laptop.request(`/session/all/${phoneHandle}`, { method: 'DELETE' })).status, 204)
  t.equal((await phone.request('/session')).json().authenticated, false, 'the phone is logged out at its next request')
  t.equal((await laptop.request('/session')).json().authenticated, true)

  const tablet = await loggedIn(base, 'ann', 'tablet')
  const desktop = await loggedIn(base, 'ann', 'desktop')
  const revoked = await laptop.request('/session/all', { method: 'DELETE' })
  t.same(revoked.json(), { revoked: 2 })
  t.equal((await tablet.request('/session')).json().authenticated, false)
  t.equal((await desktop.request('/session')).json().authenticated, false)
  t.equal((await laptop.request('/session')).json().authenticated, true, 'the current session stays')
  t.equal((await bob.request('/session')).json().authenticated, true, 'other users are untouched')

  const ownHandle = (await laptop.request('/session/all')).json()[0].id
  const own = await laptop.request(`/session/all/${ownHandle}`, { method: 'DELETE' })
  t.equal(own.status, 204)
  t.match(String(own.headers['set-cookie']), /^sid=; /, 'ending one\'s own session clears the cookie')
  t.equal((await laptop.request('/session')).json().authenticated, false)
})

t.test('anonymous callers get 401 JSON from every /session/all route', async (t) => {
  const { client } = await serve(t, { AUTH_USERS_FILE: writeUsersFile(t, users) })
  for (const [method, path] of [['GET', '/session/all'], ['DELETE', '/session/all'], ['DELETE', '/session/all/x']]) {
    const res = await client.request(path as string, { method })
    t.equal(res.status, 401, `${method} ${path}`)
    t.same(res.json(), { statusCode: 401, error: 'Unauthorized', message: 'Log in first' })
  }
})

t.test('revocation on one server process is effective on another at its next request', async (t) => {
  const db = await createTestDatabase(t)
  const env = { ...db.env, AUTH_USERS_FILE: writeUsersFile(t, users) }
  const first = await listen(await build(t, env))
  const second = await listen(await build(t, env))
  const onFirst = await loggedIn(first, 'ann', 'first')
  const onSecond = new Client(second)
  await loginAs(onSecond, 'ann', users.ann)
  t.equal((await onSecond.request('/session/all')).json().length, 2, 'both processes see both sessions')
  t.same((await onSecond.request('/session/all', { method: 'DELETE' })).json(), { revoked: 1 })
  t.equal((await onFirst.request('/session')).json().authenticated, false)
})

t.test('finding a user\'s sessions is an index lookup', async (t) => {
  const { db, base } = await serve(t, { AUTH_USERS_FILE: writeUsersFile(t, users) })
  await loggedIn(base, 'ann')
  const [plan] = await db.pool.query<RowDataPacket[]>('EXPLAIN SELECT session_id, data, expires FROM sessions WHERE user_key = ? AND expires > ?', [userKey({ name: 'ann' }), 0])
  t.equal(plan[0]?.key, 'idx_user_key')
})

t.test('many parallel listings of one user\'s sessions never starve the pool', async (t) => {
  const { app, base } = await serve(t, { AUTH_USERS_FILE: writeUsersFile(t, users) })
  const client = await loggedIn(base, 'ann')
  // More than the pool's ten connections at once: each listing must hold only one.
  const listings = await Promise.all(Array.from({ length: 25 }, () => app.sessionStore.sessionsOf({ name: 'ann' })))
  t.same([...new Set(listings.map((sessions) => sessions.length))], [1], 'every listing answered')
  const answers = await Promise.all(Array.from({ length: 25 }, () => client.request('/session/all')))
  t.same([...new Set(answers.map((res) => res.status))], [200], 'and over HTTP')
  await app.sessionStore.ping()
  t.pass('the store still answers afterwards')
  t.equal((await client.request('/session/all', { method: 'DELETE' })).status, 200)
})

t.test('secret rotation: old cookies still read while listed, new ones signed with the new secret', async (t) => {
  const db = await createTestDatabase(t)
  const env = { ...db.env, AUTH_USERS_FILE: writeUsersFile(t, users) }
  const oldSecret = 'the-old-secret-0123456789-0123456789'
  const newSecret = 'the-new-secret-0123456789-0123456789'

  const before = await listen(await build(t, { ...env, SESSION_SECRET: oldSecret }))
  const client = await loggedIn(before, 'ann')
  const cookie = client.cookie as string

  const rotated = new Client(await listen(await build(t, { ...env, SESSION_SECRET: newSecret, SESSION_PREVIOUS_SECRETS: oldSecret })))
  rotated.cookie = cookie
  const res = await rotated.request('/session')
  t.equal(res.json().authenticated, true, 'a cookie signed with a listed previous secret is read')
  t.equal(decodeURIComponent(rotated.cookie ?? '').replace(/^sid=/, ''), `s:${sign(idOf(client), newSecret)}`, 'and re-signed with the new secret')
  const fresh = new Client(rotated.base)
  await fresh.request('/session')
  t.match(decodeURIComponent(fresh.cookie ?? ''), new RegExp(`^sid=s:${sign(idOf(fresh), newSecret).replace(/[.+]/g, '\\$&')}$`), 'new cookies use SESSION_SECRET')

  const dropped = new Client(await listen(await build(t, { ...env, SESSION_SECRET: newSecret })))
  dropped.cookie = cookie
  t.equal((await dropped.request('/session')).json().authenticated, false, 'once the old secret is dropped, the old cookie is anonymous')
})

t.test('consumers protect their own routes with requireUser or withUser', async (t) => {
  const db = await createTestDatabase(t)
  const app = await build(t, {
    ...baseEnv,
    ...db.env,
    AUTH_USERS_FILE: writeUsersFile(t, users)
  }, {
    sessionRoutes: async (scope) => {
      scope.get('/reports', { preHandler: requireUser }, async (request) => ({ for: request.raw.session?.user?.name }))
      await scope.register(withUser(async (authenticated) => {
        // Typed: inside withUser, session.user is not optional.
        authenticated.get('/me/name', async (request) => ({ name: request.raw.session.user.name }))
      }))
    }
  })
  const base = await listen(app)
  const anonymous = new Client(base)
  for (const path of ['/reports', '/me/name']) {
    const res = await anonymous.request(path)
    t.equal(res.status, 401, path)
    t.equal(res.json().message, 'Log in first')
  }
  const ann = await loggedIn(base, 'ann')
  t.same((await ann.request('/reports')).json(), { for: 'ann' })
  t.same((await ann.request('/me/name')).json(), { name: 'ann' })
})
