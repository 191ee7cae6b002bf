import { promisify } from 'node:util'
import type { FastifyInstance } from 'fastify'
import type { RowDataPacket } from 'mysql2/promise'
import t from 'tap'
import { Client, build, createTestDatabase, listen } from './helper.js'

// What people write in their own routes with express-session, registered through
// `buildApp({ sessionRoutes })`, on both stores. The store's bookkeeping must never get in the way
// of copying a session around.

async function consumerRoutes (scope: FastifyInstance) {
  // The everyday login idiom: keep what the anonymous session held, regenerate, put it back.
  scope.post<{ Body: { name: string } }>('/my/login', async (request) => {
    const session = request.raw.session!
    const kept = { ...session }
    await promisify(session.regenerate.bind(session))()
    Object.assign(request.raw.session!, kept, { user: { name: request.body.name } })
    return { ok: true }
  })
  // The same with a JSON round trip (what people do to drop the prototype).
  scope.post('/my/login-json', async (request) => {
    const session = request.raw.session!
    const { cookie: _cookie, ...kept } = JSON.parse(JSON.stringify(session)) as Record<string, unknown>
    await promisify(session.regenerate.bind(session))()
    Object.assign(request.raw.session!, kept, { user: { name: 'json' } })
    return { ok: true }
  })
  // express-session's per-session lifetime: "remember me" off is a shorter cookie, or a browser-session one.
  scope.post<{ Body: { maxAge: number | null } }>('/my/remember', async (request) => {
    const session = request.raw.session! as typeof request.raw.session & { remembered?: boolean }
    // express-session's types say number, its code takes null for a browser-session cookie.
    session.cookie.maxAge = request.body.maxAge as number
    session.remembered = true
    return { ok: true }
  })
  // A JSON copy of the whole session, cookie included, assigned back after regenerate().
  scope.post('/my/login-json-whole', async (request) => {
    const session = request.raw.session!
    const kept = JSON.parse(JSON.stringify(session)) as Record<string, unknown>
    await promisify(session.regenerate.bind(session))()
    Object.assign(request.raw.session!, kept, { user: { name: 'whole' } })
    return { ok: true }
  })
  scope.post('/my/cart', async (request) => {
    const session = request.raw.session! as typeof request.raw.session & { cart?: number[] }
    session.cart = [...(session.cart ?? []), session.cart?.length ?? 0]
    return { cart: session.cart }
  })
  scope.get('/my/whoami', async (request) => {
    const session = request.raw.session! as typeof request.raw.session & { cart?: number[] }
    return { user: session.user ?? null, cart: session.cart ?? null }
  })
  // reload() and an explicit save() inside a route.
  scope.post('/my/reload-and-save', async (request) => {
    const session = request.raw.session!
    await promisify(session.reload.bind(session))()
    const reloaded = request.raw.session! as typeof request.raw.session & { saves?: number }
    reloaded.saves = (reloaded.saves ?? 0) + 1
    await promisify(reloaded.save.bind(reloaded))()
    return { saves: reloaded.saves }
  })
}

for (const store of ['mysql', 'memory'] as const) {
  t.test(`${store}: a consumer's login route copying the session across regenerate() stores the new session`, async (t) => {
    const db = store === 'mysql' ? await createTestDatabase(t) : undefined
    const app = await build(t, db?.env ?? { SESSION_HOST: undefined }, { sessionRoutes: consumerRoutes })
    const base = await listen(app)
    for (const path of ['/my/login', '/my/login-json', '/my/login-json-whole']) {
      const client = new Client(base)
      t.same((await client.request('/my/cart', { method: 'POST', body: {} })).json(), { cart: [0] })
      const anonymous = client.cookie
      const login = await client.request(path, { method: 'POST', body: { name: 'ann' } })
      t.equal(login.status, 200, `${path}: 200`)
      // Max-Age counts from when express-session writes the header: a second boundary crossed since the
      // session's expiry was set (a loaded machine) makes it one less.
      t.match(String(login.headers['set-cookie']), /^sid=s%3A[^;]+; Path=\/; Expires=[^;]+; HttpOnly; SameSite=Lax; Max-Age=2628000$/, `${path}: the cookie with every configured attribute`)
      t.not(client.cookie, anonymous, `${path}: a new session id`)
      const me = (await client.request('/my/whoami')).json()
      t.same(me.cart, [0], `${path}: the copied data is there on the next request`)
      t.ok(me.user, `${path}: so is the user`)
      // And the old id is gone.
      const old = new Client(base)
      old.cookie = anonymous
      t.same((await old.request('/my/whoami')).json(), { user: null, cart: null }, `${path}: the anonymous session is gone`)
    }
    if (db) {
      const [rows] = await db.pool.query<RowDataPacket[]>("SELECT COUNT(*) AS n FROM sessions WHERE user_key <> ''")
      t.equal(Number(rows[0]?.n), 3, 'every logged-in row is keyed to its user')
    }
  })

  t.test(`${store}: reload() and save() inside a route`, async (t) => {
    const db = store === 'mysql' ? await createTestDatabase(t) : undefined
    const app = await build(t, db?.env ?? { SESSION_HOST: undefined }, { sessionRoutes: consumerRoutes })
    const client = new Client(await listen(app))
    await client.request('/my/cart', { method: 'POST', body: {} })
    t.same((await client.request('/my/reload-and-save', { method: 'POST', body: {} })).json(), { saves: 1 })
    t.same((await client.request('/my/reload-and-save', { method: 'POST', body: {} })).json(), { saves: 2 })
    t.same((await client.request('/my/whoami')).json().cart, [0])
  })
}

t.test('a route\'s own cookie lifetime holds across requests, up to SESSION_MAX_AGE, never beyond', async (t) => {
  const db = await createTestDatabase(t)
  const app = await build(t, { ...db.env, SESSION_MAX_AGE: '600000', SESSION_TOUCH_AFTER: '1000' }, { sessionRoutes: consumerRoutes })
  const base = await listen(app)
  const storedExpiry = async (client: Client) => {
    const id = decodeURIComponent(client.cookie ?? '').replace(/^sid=s:/, '').split('.')[0]
    const [rows] = await db.pool.query<RowDataPacket[]>('SELECT expires FROM sessions WHERE session_id = ?', [id])
    return Number(rows[0]?.expires)
  }
  const cases: Array<[string, number | null, RegExp, number | undefined]> = [
    ['shorter', 60000, /; Max-Age=60(;|$)/, 60],
    ['longer than SESSION_MAX_AGE', 10 * 365 * 24 * 3600000, /; Max-Age=600(;|$)/, 600],
    ['a browser-session cookie', null, /^(?!.*(Max-Age|Expires)).*$/, undefined]
  ]
  for (const [label, maxAge, pattern, storedSeconds] of cases) {
    const client = new Client(base)
    const set = await client.request('/my/remember', { method: 'POST', body: { maxAge } })
    t.match(String(set.headers['set-cookie']), pattern, `${label}: the cookie as the route set it`)
    if (storedSeconds) t.ok(Math.abs(await storedExpiry(client) - (Date.now() / 1000 + storedSeconds)) < 3, `${label}: the row expires with it`)
    else t.ok(Math.abs(await storedExpiry(client) - (Date.now() / 1000 + 600)) < 3, `${label}: the row expires after SESSION_MAX_AGE idle`)
    await new Promise((resolve) => setTimeout(resolve, 1100))
    const renewed = await client.request('/my/whoami')
    t.match(String(renewed.headers['set-cookie'] ?? 'sid=x'), pattern, `${label}: renewed the same way on a later request`)
    const { expiresAt } = (await client.request('/session')).json()
    // A touch that read made is written without the answer waiting; rounding to whole seconds at
    // the route and at the write may differ by one.
    await new Promise((resolve) => setTimeout(resolve, 200))
    t.ok(Math.abs(Date.parse(expiresAt) - await storedExpiry(client) * 1000) <= 1000, `${label}: GET /session's expiresAt is the row's expiry (${expiresAt})`)
  }
})
