import { execFileSync } from 'node:child_process'
import type { SessionData } from 'express-session'
import { pino } from 'pino'
import t, { type Test } from 'tap'
import { lifetimePolicy, loadConfig } from '../src/config/config.js'
import type { ManagedStore } from '../src/session/managed-store.js'
import { MemorySessionStore } from '../src/session/memory-store.js'
import { createMysqlStore } from '../src/session/mysql-store.js'
import { createTestDatabase, type Env } from './helper.js'

// The contract express-session's Store and express-mysql-session's own suite exercise, run against
// both of the project's stores as a third party would call them: plain data, promises or callbacks.

const silent = pino({ level: 'silent' })

type StoreFactory = (t: Test, env?: Env) => Promise<{ store: ManagedStore, setExpires?: (sid: string, expires: number) => Promise<void> }>

const stores: Record<string, StoreFactory> = {
  mysql: async (t, env = {}) => {
    const db = await createTestDatabase(t)
    const { config } = loadConfig({ ...db.env, SESSION_SECRET: 'x', ...env })
    const { pool, store } = createMysqlStore(config, { deadlineMs: 5000, log: silent })
    t.teardown(() => pool.end())
    await store.prepare()
    return { store, setExpires: async (sid, expires) => { await db.pool.query('UPDATE sessions SET expires = ? WHERE session_id = ?', [expires, sid]) } }
  },
  memory: async (_t, env = {}) => {
    const { config } = loadConfig({ SESSION_SECRET: 'x', ...env })
    return { store: new MemorySessionStore(lifetimePolicy(config)) }
  }
}

const call = <T>(method: (callback: (error: unknown, value?: T) => void) => void) =>
  new Promise<T | undefined>((resolve, reject) => method((error, value) => error ? reject(error) : resolve(value)))

const plainData = [
  { some_text: 'a text value', some_float: 1.0223, an_int: 16 },
  {},
  { cookie: { originalMaxAge: 60000, expires: new Date(Date.now() + 60000).toISOString(), path: '/', httpOnly: true }, views: 3 },
  { nested: { deep: [1, 'two', { three: null }] }, unicode: 'é\u{1F600}\ud800' }
]

async function keepsNewerTokens (t: Test, store: ManagedStore): Promise<void> {
  const expiresAt = Date.now() + 60000
  const tokens = (name: string) => ({ idToken: `id-${name}`, accessToken: `access-${name}`, refreshToken: `refresh-${name}`, accessTokenExpiresAt: expiresAt })
  const user = { name: 'ann', sub: 'ann-sub', iss: 'https://idp.example' }
  const cookie = { originalMaxAge: 60000, expires: new Date(Date.now() + 60000).toISOString() }
  await call<void>((done) => store.set('sso', { cookie, user, sso: tokens('first') } as unknown as SessionData, done))
  const get = () => call<SessionData | null>((done) => store.get('sso', done)) as Promise<SessionData>
  const save = (session: SessionData) => call<void>((done) => store.set('sso', session, done))

  // A slow request reads the session; a token refresh reads, saves new tokens; the slow request
  // then saves a change of its own.
  const slow = await get()
  const refresh = await get()
  refresh.sso = tokens('second')
  await save(refresh)
  slow.state = { theme: 'dark' }
  await save(slow)
  let stored = await get()
  t.same(stored.sso, tokens('second'), 'the refreshed tokens stay')
  t.same(stored.state, { theme: 'dark' }, 'and the slow request\'s change is saved')

  // A request that changed the tokens itself writes them, whatever the row holds.
  const older = await get()
  const newer = await get()
  newer.sso = tokens('third')
  await save(newer)
  older.sso = tokens('fourth')
  await save(older)
  stored = await get()
  t.same(stored.sso, tokens('fourth'), 'tokens a request set are written')

  // A request that saves twice compares its second save with its own first.
  const twice = await get()
  twice.state = { step: 1 }
  await save(twice)
  twice.state = { step: 2 }
  await save(twice)
  stored = await get()
  t.same([stored.state, stored.sso], [{ step: 2 }, tokens('fourth')], 'two saves of one request')
}

for (const [kind, open] of Object.entries(stores)) {
  t.test(`${kind}: get returns exactly what set was given, with promises and with callbacks`, async (t) => {
    const { store } = await open(t)
    for (const [index, data] of structuredClone(plainData).entries()) {
      await call<void>((done) => store.set(`sid-${index}`, data as unknown as SessionData, done))
      t.same(await call((done) => store.get(`sid-${index}`, done)), data, `fixture ${index}, callback`)
      t.strictSame(JSON.parse(JSON.stringify(await call((done) => store.get(`sid-${index}`, done)))), data, `fixture ${index}: nothing added`)
      const viaPromise = await (store.get as unknown as (sid: string) => Promise<unknown>)(`sid-${index}`)
      t.strictSame(Object.keys(viaPromise as object).sort(), Object.keys(data).sort(), `fixture ${index}, promise: no extra keys`)
      t.same(Object.getOwnPropertySymbols(viaPromise), [], `fixture ${index}: no bookkeeping symbols on the data`)
    }
  })

  t.test(`${kind}: a session read from the store, spread or JSON-copied into a new id, is stored under that id`, async (t) => {
    const { store } = await open(t)
    const data = { cookie: { originalMaxAge: 60000, expires: new Date(Date.now() + 60000).toISOString() }, cart: [1, 2] }
    await call<void>((done) => store.set('original', data as unknown as SessionData, done))
    const read = await call<SessionData | null>((done) => store.get('original', done)) as SessionData
    for (const [label, copy] of [['spread', { ...read }], ['Object.assign', Object.assign({}, read)], ['JSON round trip', JSON.parse(JSON.stringify(read))], ['structuredClone', structuredClone(read)]] as const) {
      await call<void>((done) => store.set(`copy-${label}`, copy as SessionData, done))
      t.same(await call((done) => store.get(`copy-${label}`, done)), data, `${label}: stored under the new id`)
    }
  })

  t.test(`${kind}: touch of a session never stored creates nothing, and a later set still stores it`, async (t) => {
    const { store } = await open(t)
    const data = { cookie: { originalMaxAge: 60000, expires: new Date(Date.now() + 60000).toISOString() }, n: 1 } as unknown as SessionData
    await call<void>((done) => store.touch('never-stored', data, () => done(null)))
    t.equal(await call((done) => store.get('never-stored', done)), null, 'touch did not create it')
    await call<void>((done) => store.set('never-stored', data, done))
    t.same(await call((done) => store.get('never-stored', done)), { ...data }, 'set after touch inserted it')
  })

  t.test(`${kind}: rewriting an unchanged session never overwrites another request's write`, async (t) => {
    const { store } = await open(t)
    const data = { cookie: { originalMaxAge: 60000, expires: new Date(Date.now() + 60000).toISOString() }, v: 'original' }
    await call<void>((done) => store.set('contended', data as unknown as SessionData, done))
    const readBySlowRequest = await call<SessionData | null>((done) => store.get('contended', done)) as SessionData
    const written = { ...data, v: 'written meanwhile' }
    await call<void>((done) => store.set('contended', written as unknown as SessionData, done))
    await store.rewriteUnchanged('contended', readBySlowRequest)
    t.same(await call((done) => store.get('contended', done)), written, 'the other write stands')
    const again = await call<SessionData | null>((done) => store.get('contended', done)) as SessionData & { extra?: boolean }
    again.extra = true
    await store.rewriteUnchanged('contended', again)
    t.same(await call((done) => store.get('contended', done)), { ...written, extra: true }, 'with nothing in between, the rewrite is stored')
  })

  t.test(`${kind}: a save never writes the SSO tokens it read over newer ones another request saved`, async (t) => {
    await keepsNewerTokens(t, (await open(t)).store)
  })

  t.test(`${kind}: the sessions of one identity provider login end together, found by (issuer, sid)`, async (t) => {
    const { store } = await open(t)
    const cookie = { originalMaxAge: 60000, expires: new Date(Date.now() + 60000).toISOString() }
    const session = (iss: string, sid: string | undefined) => ({
      cookie,
      user: { name: 'ann', sub: 'ann', iss },
      ...(sid === undefined ? {} : { sso: { idToken: 'id', accessToken: 'access', ...{ sid } } })
    }) as unknown as SessionData
    const saved: Array<[string, SessionData]> = [
      ['laptop', session('https://idp.example', 'login-1')],
      ['tablet', session('https://idp.example', 'login-1')],
      ['phone', session('https://idp.example', 'login-2')],
      ['other-issuer', session('https://other.example', 'login-1')],
      ['no-sid', session('https://idp.example', undefined)]
    ]
    for (const [id, data] of saved) await call<void>((done) => store.set(id, data, done))
    t.equal(await store.endSessionsOfProviderLogin('https://idp.example', 'login-1'), 2)
    const left = []
    for (const [id] of saved) if (await call((done) => store.get(id, done))) left.push(id)
    t.same(left, ['phone', 'other-issuer', 'no-sid'], 'only that login\'s sessions ended')
  })

  t.test(`${kind}: all, length and get agree on what is expired`, async (t) => {
    const { store, setExpires } = await open(t)
    const live = { cookie: { originalMaxAge: 60000, expires: new Date(Date.now() + 60000).toISOString() }, live: true }
    const expired = { cookie: { originalMaxAge: 1000, expires: new Date(Date.now() - 10000).toISOString() }, live: false }
    for (let i = 0; i < 5; i++) await call<void>((done) => store.set(`live-${i}`, live as unknown as SessionData, done))
    for (let i = 0; i < 3; i++) await call<void>((done) => store.set(`expired-${i}`, expired as unknown as SessionData, done))
    // The boundary: a row whose expiry is this very second is expired for every method alike.
    await call<void>((done) => store.set('boundary', live as unknown as SessionData, done))
    await setExpires?.('boundary', Math.floor(Date.now() / 1000))
    const all = await call<Record<string, unknown>>((done) => store.all?.(done as never)) ?? {}
    const length = await call<number>((done) => store.length?.(done))
    const readable: string[] = []
    for (const sid of ['boundary', ...Array.from({ length: 5 }, (_, i) => `live-${i}`), ...Array.from({ length: 3 }, (_, i) => `expired-${i}`)]) {
      if (await call((done) => store.get(sid, done))) readable.push(sid)
    }
    t.same(Object.keys(all).sort(), readable.sort(), 'all() returns what get() returns')
    t.equal(length, readable.length, 'length() counts what get() returns')
    t.equal(await store.countLive(), readable.length, 'the live-sessions gauge agrees')
    // A row written before an absolute timeout was configured: live by its expiry, past by its data.
    if (setExpires) {
      const { store: strict, setExpires: setStrictExpires } = await open(t, { SESSION_ABSOLUTE_TIMEOUT: '60000' })
      const old = { cookie: { originalMaxAge: 60000, expires: new Date(Date.now() + 60000).toISOString() }, createdAt: Date.now() - 120000 }
      await call<void>((done) => strict.set('created-long-ago', old as unknown as SessionData, done))
      await setStrictExpires?.('created-long-ago', Math.floor(Date.now() / 1000) + 3600)
      t.equal(await call((done) => strict.get('created-long-ago', done)), null, 'past the absolute timeout: get() has none')
      t.same(await call<Record<string, unknown>>((done) => strict.all?.(done as never)), {}, 'nor all()')
      t.equal(await call<number>((done) => strict.length?.(done)), 0, 'nor length()')
    }
    await call<void>((done) => store.clear?.(done))
    t.equal(await call<number>((done) => store.length?.(done)), 0, 'clear() empties it')
  })

  t.test(`${kind}: a callback that throws is an exception at its call, not an unhandled rejection`, async (t) => {
    const script = `
      const { ${kind === 'mysql' ? 'createMysqlStore' : 'MemorySessionStore'} } = await import(${JSON.stringify(new URL(kind === 'mysql' ? '../src/session/mysql-store.ts' : '../src/session/memory-store.ts', import.meta.url).pathname)})
      const { loadConfig, lifetimePolicy } = await import(${JSON.stringify(new URL('../src/config/config.ts', import.meta.url).pathname)})
      const { pino } = await import('pino')
      process.on('unhandledRejection', () => { console.log('unhandledRejection'); process.exit(3) })
      process.on('uncaughtException', (error) => { console.log('uncaughtException ' + error.message); process.exit(0) })
      const { config } = loadConfig(JSON.parse(process.env.STORE_ENV))
      const store = ${kind === 'mysql' ? "createMysqlStore(config, { deadlineMs: 5000, log: pino({ level: 'silent' }) }).store" : 'new MemorySessionStore(lifetimePolicy(config))'}
      let calls = 0
      store.get('no-such-session', () => { calls++; if (calls > 1) { console.log('called twice'); process.exit(4) } throw new Error('thrown by the callback') })
      setTimeout(() => { console.log('nothing happened'); process.exit(5) }, 5000)
    `
    const db = kind === 'mysql' ? await createTestDatabase(t) : undefined
    const output = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      env: { ...process.env, STORE_ENV: JSON.stringify({ ...db?.env, SESSION_SECRET: 'x' }) },
      encoding: 'utf8'
    })
    t.equal(output.trim(), 'uncaughtException thrown by the callback')
  })
}

t.test('mysql with a BLOB data column: a save never writes the SSO tokens it read over newer ones either', async (t) => {
  const db = await createTestDatabase(t)
  await db.pool.query(`CREATE TABLE sessions (
    session_id varchar(128) COLLATE utf8mb4_bin NOT NULL, expires int(11) unsigned NOT NULL, data mediumblob, PRIMARY KEY (session_id)
  ) ENGINE=InnoDB`)
  const { config } = loadConfig({ ...db.env, SESSION_SECRET: 'x' })
  const { pool, store } = createMysqlStore(config, { deadlineMs: 5000, log: silent })
  t.teardown(() => pool.end())
  await store.prepare()
  await keepsNewerTokens(t, store)
})
