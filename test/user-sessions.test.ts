import { userKey } from '../src/session/identity.js'
import type { RowDataPacket } from 'mysql2/promise'
import { sign } from 'cookie-signature'
import t from 'tap'
import { requireUser, withUser } from '../src/auth/require-user.js'
import { loadConfig } from '../src/config/config.js'
import { sessionHandle } from '../src/session/handles.js'
import { describeDevice, summarizeSessions } from '../src/session/summaries.js'
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
    t.match(entry, { id: /^[A-Za-z0-9_-]{32}$/, ip: '127.0.0.1', createdAt: String, lastSeenAt: String, device: 'Unknown browser' })
    t.same(Object.keys(entry).sort(), ['createdAt', 'current', 'device', 'id', 'ip', 'lastSeenAt', 'userAgent'])
  }
  for (const client of [laptop, phone, bob]) t.notOk(res.body.includes(idOf(client)), 'no session id in the list')
  t.equal((await bob.request('/session/all')).json().length, 1)
})

// Real User-Agent headers, as browsers send them.
const UA = {
  chromeLinux: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36',
  safariIphone: 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1',
  firefoxWindows: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0',
  edgeWindows: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.51',
  chromeAndroid: 'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36',
  safariMac: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15',
  safariIpad: 'Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1'
}

t.test('each listed session names its device, read from the User-Agent by bowser; the header stays as sent', async (t) => {
  const { base } = await serve(t, { AUTH_USERS_FILE: writeUsersFile(t, users) })
  const expected: Array<[string | undefined, string]> = [
    [UA.chromeLinux, 'Chrome on Linux'],
    [UA.safariIphone, 'Safari on iPhone'],
    [UA.firefoxWindows, 'Firefox on Windows'],
    [UA.edgeWindows, 'Edge on Windows'],
    [UA.chromeAndroid, 'Chrome on Android'],
    ['curl/8.5.0', 'Unknown browser'],
    ['', 'Unknown browser'],
    // No header at all: Node's client sends none unless told.
    [undefined, 'Unknown browser']
  ]
  let last: Client | undefined
  for (const [userAgent, device] of expected) {
    last = new Client(base)
    const res = await loginAs(last, 'ann', users.ann, userAgent === undefined ? {} : { 'user-agent': userAgent })
    t.equal(res.status, 200, `login as ${device}`)
  }
  const list = (await (last as Client).request('/session/all')).json() as Array<{ userAgent: string | null, device: string }>
  const listed = new Map(list.map(({ userAgent, device }) => [userAgent, device]))
  t.equal(list.length, expected.length)
  for (const [userAgent, device] of expected) {
    t.equal(listed.get(userAgent ?? ''), device, `${JSON.stringify(userAgent)}: ${device}`)
  }
  const docs = (await (last as Client).request('/docs/json')).json()
  t.match(docs.paths['/session/all'].get.responses[200].content['application/json'].schema.items, {
    required: ['id', 'current', 'createdAt', 'lastSeenAt', 'userAgent', 'device', 'ip'],
    properties: { device: { type: 'string' }, userAgent: { type: ['string', 'null'] } }
  }, 'documented')
})

t.test('describeDevice: browser on system, the iPhone or iPad by name, unknown clients and no header', async (t) => {
  t.equal(describeDevice(UA.safariMac), 'Safari on macOS')
  t.equal(describeDevice(UA.safariIpad), 'Safari on iPad')
  t.equal(describeDevice(UA.chromeLinux), 'Chrome on Linux')
  for (const unknown of [null, undefined, '', '   ', 'curl/8.5.0', 'python-requests/2.31', 'test']) {
    t.equal(describeDevice(unknown), 'Unknown browser', JSON.stringify(unknown))
  }
  // bowser's last resort takes what precedes a "/" as the name: not shown, the system still is.
  t.equal(describeDevice('Mozilla/5.0 (X11; Linux x86_64) SomeTool/1.0 (compatible)'), 'Unknown browser on Linux')
  t.equal(describeDevice('MyApp/2.0 (Windows NT 10.0)'), 'Unknown browser on Windows')
})

t.test('summarizeSessions: lastSeenAt never before createdAt, and never after now when created before now', async (t) => {
  const { config } = loadConfig({ SESSION_SECRET: 'a-test-secret-0123456789-0123456789', SESSION_MAX_AGE: '3600000' })
  const maxAge = config.SESSION_MAX_AGE
  const now = Date.parse('2026-01-01T12:00:00.000Z')
  const minute = 60000
  const session = (id: string, createdAt: number | undefined, lastUse: number) => ({
    id, data: createdAt === undefined ? {} : { createdAt }, expiresAt: lastUse + maxAge
  })
  const summaries = summarizeSessions([
    session('ordinary', now - 30 * minute, now - 10 * minute),
    session('used after now (another clock)', now - 30 * minute, now + 5 * minute),
    session('created after now (another clock)', now + 5 * minute, now + 6 * minute),
    session('created after now, expiry from before', now + 5 * minute, now - 10 * minute),
    session('expiry capped by the absolute timeout', now - 30 * minute, now - 40 * minute),
    session('no createdAt', undefined, now - 10 * minute),
    session('current, created after now', now + 2 * minute, now + 2 * minute)
  ], config, 'current, created after now', now)
  const byId = new Map(summaries.map((summary) => [summary.id, summary]))
  const of = (id: string) => {
    const summary = byId.get(sessionHandle(config.SESSION_SECRET as string, id))
    return { createdAt: Date.parse(summary?.createdAt ?? ''), lastSeenAt: Date.parse(summary?.lastSeenAt ?? '') }
  }
  for (const summary of summaries) {
    t.ok(Date.parse(summary.lastSeenAt) >= Date.parse(summary.createdAt), `${summary.lastSeenAt} >= ${summary.createdAt}`)
    if (Date.parse(summary.createdAt) <= now) t.ok(Date.parse(summary.lastSeenAt) <= now, `${summary.lastSeenAt} <= now`)
  }
  t.same(of('ordinary'), { createdAt: now - 30 * minute, lastSeenAt: now - 10 * minute }, 'the last use the store recorded')
  t.same(of('used after now (another clock)'), { createdAt: now - 30 * minute, lastSeenAt: now }, 'at most now')
  t.same(of('created after now (another clock)'), { createdAt: now + 5 * minute, lastSeenAt: now + 5 * minute }, 'created ahead of this clock: seen then')
  t.same(of('created after now, expiry from before'), { createdAt: now + 5 * minute, lastSeenAt: now + 5 * minute })
  t.same(of('expiry capped by the absolute timeout'), { createdAt: now - 30 * minute, lastSeenAt: now - 30 * minute }, 'then the creation time')
  t.same(of('no createdAt'), { createdAt: now, lastSeenAt: now }, 'no creation time: now for both')
  t.same(of('current, created after now'), { createdAt: now + 2 * minute, lastSeenAt: now + 2 * minute }, 'the current one: now, but not before its creation')
  t.equal(summaries[0]?.current, true, 'the current one first')
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
