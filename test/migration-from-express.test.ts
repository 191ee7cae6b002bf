import { once } from 'node:events'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createRequire } from 'node:module'
import express from 'express'
import session, { type Store } from 'express-session'
import type { FastifyInstance } from 'fastify'
import type { RowDataPacket } from 'mysql2/promise'
import t, { type Test } from 'tap'
import type { SessionUserMapper } from '../src/session/identity.js'
import { isPlainObject } from '../src/session/stored-data.js'
import { build, Client, createJsonDataTable, createTestDatabase, databaseUrl, listen, sessionCookie, type TestDatabase } from './helper.js'
import { loginAs, writeUsersFile } from './support/accounts.js'
import { sessionIdOf } from './support/signed-cookie.js'

// docs/migrating-from-express.md, end to end: users of the Express app this project was ported from
// (Express 5, express-session, express-mysql-session, cookie `connect.sid`) switch to this server
// without being logged out, and switching back works too. Real servers, a real database, no mocks.

const require = createRequire(import.meta.url)

interface MySQLStoreOptions {
  host: string
  port: number
  user: string
  password: string
  database: string
  createDatabaseTable?: boolean
  clearExpired?: boolean
  checkExpirationInterval?: number
  schema?: { tableName: string, columnNames?: Record<string, string> }
}
type LegacyStore = Store & { onReady: () => Promise<void>, close: () => Promise<void> }
const MySQLStore = (require('express-mysql-session') as (s: typeof session) => new (options: MySQLStoreOptions) => LegacyStore)(session)

const SECRET = 'the-express-apps-own-secret-0123456789-abcdefghij'
const COOKIE = 'connect.sid'
const MAX_AGE = 30 * 24 * 3600 * 1000
const ANN = { id: 7, username: 'ann', roles: ['admin'] }

/** The Express app's own user shape, mapped to this project's `{ name }`. */
const sessionUser: SessionUserMapper = (data) =>
  isPlainObject(data.user) && typeof data.user.username === 'string' ? { name: data.user.username } : undefined

interface Variant {
  label: string
  table: string
  /** Creates the table before express-mysql-session starts, when it does not create it itself. */
  createTable?: (db: TestDatabase) => Promise<void>
  store: Partial<MySQLStoreOptions>
  /** The Express app's cookie sets SameSite=Lax, as this project's configuration does. */
  sameSiteLax?: boolean
  /** mysql2 hands the store parsed JSON, not the row's text, so it never rewrites a row it only read. */
  jsonColumn?: boolean
}

const variants: Variant[] = [
  {
    label: 'the table express-mysql-session creates itself (text data)',
    table: 'sessions',
    store: { createDatabaseTable: true }
  },
  {
    label: 'its table with a JSON data column',
    table: 'sessions',
    createTable: createJsonDataTable,
    store: { createDatabaseTable: false },
    jsonColumn: true
  },
  {
    label: 'its own tableName (SESSION_TABLE), its own cleanup interval',
    table: 'legacy_sessions',
    store: {
      createDatabaseTable: true,
      clearExpired: true,
      checkExpirationInterval: 60000,
      // Only the table's name: this project's store needs the default column names (see the doc).
      schema: { tableName: 'legacy_sessions', columnNames: { session_id: 'session_id', expires: 'expires', data: 'data' } }
    }
  },
  {
    label: 'no cleanup of its own, cookie attributes as configured here (a read writes nothing at all)',
    table: 'sessions',
    store: { createDatabaseTable: true, clearExpired: false },
    sameSiteLax: true
  }
]

/** The Express app as the original runs it, on its own pool, listening on loopback. */
async function startExpress (t: Test, db: TestDatabase, variant: Variant): Promise<{ base: string, close: () => Promise<void> }> {
  const store = new MySQLStore({
    host: databaseUrl.hostname,
    port: Number(databaseUrl.port || 3306),
    user: decodeURIComponent(databaseUrl.username),
    password: decodeURIComponent(databaseUrl.password),
    database: db.name,
    ...variant.store
  })
  await store.onReady()
  const app = express()
  app.use(session({
    name: COOKIE,
    secret: SECRET,
    store,
    resave: false,
    saveUninitialized: true,
    cookie: { secure: false, maxAge: MAX_AGE, ...(variant.sameSiteLax ? { sameSite: 'lax' as const } : {}) }
  }))
  const data = (req: express.Request) => req.session as unknown as Record<string, unknown>
  app.get('/visit', (req, res) => {
    data(req).views = Number(data(req).views ?? 0) + 1
    data(req).cart = ['apple', 'pear']
    res.json({ views: data(req).views })
  })
  app.post('/login/:who', (req, res, next) => {
    (req.session as session.Session).regenerate((error) => {
      if (error) return next(error)
      data(req).user = req.params.who === 'ann' ? ANN : { name: req.params.who }
      res.json({ ok: true })
    })
  })
  app.get('/me', (req, res) => { res.json({ id: req.sessionID, session: req.session }) })
  const server: Server = app.listen(0, '127.0.0.1')
  await once(server, 'listening')
  let closed = false
  const close = async () => {
    if (closed) return
    closed = true
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
    await store.close()
  }
  t.teardown(close)
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close }
}

/** The session id a response's Set-Cookie names, if it sets the cookie. */
const issuedId = (res: { headers: { 'set-cookie'?: string[] } }) => sessionIdOf(sessionCookie(res.headers['set-cookie'], COOKIE))
const settle = () => new Promise((resolve) => setTimeout(resolve, 300))

for (const variant of variants) {
  t.test(variant.label, async (t) => {
    const db = await createTestDatabase(t)
    await variant.createTable?.(db)
    const table = variant.table
    const rows = async () => Object.fromEntries((await db.pool.query<RowDataPacket[]>(`SELECT session_id, data FROM \`${table}\``))[0]
      .map((row) => [String(row.session_id), typeof row.data === 'string' ? row.data : JSON.stringify(row.data)]))
    const parsedRow = async (id: string) => JSON.parse((await rows())[id] as string) as Record<string, unknown>

    // 1. The Express app has users: anonymous sessions with data, a legacy-shaped login, a { name } one.
    const legacy = await startExpress(t, db, variant)
    const client = () => new Client(legacy.base, COOKIE)
    const anonymous = client()
    await anonymous.request('/visit')
    await anonymous.request('/visit')
    const bare = client()
    await bare.request('/me')
    const annLaptop = client()
    await annLaptop.request('/login/ann', { method: 'POST' })
    await annLaptop.request('/visit')
    const annPhone = client()
    await annPhone.request('/login/ann', { method: 'POST' })
    const bob = client()
    await bob.request('/login/bob', { method: 'POST' })
    const clients = { anonymous, bare, annLaptop, annPhone, bob }
    const ids: Record<string, string> = {}
    for (const [name, c] of Object.entries(clients)) ids[name] = (await c.request('/me')).json().id
    t.match((await annLaptop.request('/me')).json().session, { views: 1, user: ANN }, 'the fixture: Express logged ann in with its own user shape')
    await legacy.close()
    const before = await rows()
    t.same(Object.keys(before).sort(), Object.values(ids).sort(), 'the fixture: one row per client')

    // 2. This project on the same table, cookie and secret, with a mapper for the legacy user.
    const project: FastifyInstance = await build(t, {
      ...db.env,
      SESSION_TABLE: table,
      SESSION_COOKIE_NAME: COOKIE,
      SESSION_SECRET: SECRET,
      SESSION_COOKIE_SECURE: 'false',
      SESSION_SAVE_UNINITIALIZED: 'true',
      SESSION_MAX_AGE: String(MAX_AGE),
      AUTH_USERS_FILE: writeUsersFile(t, { carol: 'carols password' })
    }, {
      sessionUser,
      sessionRoutes: async (scope) => {
        scope.get('/legacy', async (request) => ({ id: request.raw.sessionID, session: request.raw.session }))
        scope.post('/legacy/views', async (request) => {
          const data = request.raw.session as unknown as Record<string, unknown>
          data.views = Number(data.views ?? 0) + 1
          return { views: data.views }
        })
      }
    })
    const [columns] = await db.pool.query<RowDataPacket[]>(
      'SELECT column_name AS name FROM information_schema.columns WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position', [db.name, table])
    t.same(columns.map((column) => column.name), ['session_id', 'expires', 'data', 'user_key', 'sso_key'], 'the table is upgraded: user_key and sso_key columns next to its three')
    // Before anybody visits: the legacy user's sessions are hers already (keyed through the mapper).
    t.same((await project.sessionStore.sessionsOf({ name: 'ann' })).map((s) => s.id).sort(), [ids.annLaptop, ids.annPhone].sort(), 'ann\'s Express sessions are listed as hers before any visit')
    t.same((await project.sessionStore.sessionsOf({ name: 'bob' })).map((s) => s.id), [ids.bob], 'and bob\'s')

    const base = await listen(project)
    for (const c of Object.values(clients)) (c as { base: string }).base = base
    const expected: Record<string, { authenticated: boolean, name?: string }> = {
      anonymous: { authenticated: false },
      bare: { authenticated: false },
      annLaptop: { authenticated: true, name: 'ann' },
      annPhone: { authenticated: true, name: 'ann' },
      bob: { authenticated: true, name: 'bob' }
    }
    const readEverything = async () => {
      for (const [name, c] of Object.entries(clients)) {
        const res = await c.request('/session')
        t.equal(res.status, 200, `${name}: 200`)
        t.ok(issuedId(res) === undefined || issuedId(res) === ids[name], `${name}: the same session continues (${issuedId(res) ?? 'no Set-Cookie'})`)
        t.same(res.json().authenticated, expected[name]!.authenticated, `${name}: authenticated ${expected[name]!.authenticated}`)
        if (expected[name]!.name) t.same(res.json().user, { name: expected[name]!.name }, `${name}: as ${expected[name]!.name}`)
        const legacyView = await c.request('/legacy')
        t.equal(legacyView.json().id, ids[name], `${name}: the consumer route sees the same id`)
      }
    }
    await readEverything()
    const view = async (c: Client) => (await c.request('/legacy')).json().session
    t.match(await view(anonymous), { views: 2, cart: ['apple', 'pear'] }, 'every legacy field of an anonymous session is there')
    t.match(await view(annLaptop), { views: 1, cart: ['apple', 'pear'], user: { ...ANN, name: 'ann' } }, 'and of ann\'s, her user mapped and merged over the legacy object')
    t.match(await view(bob), { user: { name: 'bob' } })
    await settle()
    const afterFirstReads = await rows()
    if (variant.sameSiteLax || variant.jsonColumn) {
      t.same(afterFirstReads, before, 'reads changed no row')
    } else {
      // Express stored no SameSite; the configured one is written once, with the cookie sent again
      // (the project's rule for outdated cookie attributes, for rows it read as text). Nothing else
      // the rows hold changes, but the mapped user's name is stored with them.
      for (const [name, id] of Object.entries(ids)) {
        const { cookie: oldCookie, ...oldData } = JSON.parse(before[id] as string)
        const { cookie: newCookie, ...newData } = JSON.parse(afterFirstReads[id] as string)
        if (name.startsWith('ann')) oldData.user.name = 'ann'
        t.same(newData, oldData, `${name}: the data is as Express stored it`)
        // Its expiry restarts with the rewrite, as at any write.
        t.same({ ...newCookie, expires: undefined }, { ...oldCookie, sameSite: 'lax', expires: undefined }, `${name}: the cookie gets the configured SameSite`)
      }
    }
    await readEverything()
    await settle()
    t.same(await rows(), afterFirstReads, 'reads of a session already in its configured form write nothing')

    // "Log out my other devices" finds the legacy user's Express sessions.
    t.same((await annLaptop.request('/session/all')).json().length, 2, 'ann sees both her devices')
    t.same((await annLaptop.request('/session/all', { method: 'DELETE' })).json(), { revoked: 1 }, 'and ends the other one')
    t.notOk((await rows())[ids.annPhone!], 'its row is gone')
    t.same((await annPhone.request('/session')).json().authenticated, false, 'that device is logged out')

    // 3. The project writes: a consumer route changes a field, a user logs in through the project.
    t.same((await anonymous.request('/legacy/views', { method: 'POST' })).json(), { views: 3 })
    t.same((await annLaptop.request('/legacy/views', { method: 'POST' })).json(), { views: 2 })
    const carol = new Client(base, COOKIE)
    t.equal((await loginAs(carol, 'carol', 'carols password')).status, 200, 'carol logs in through the project')
    const carolId = (await carol.request('/legacy')).json().id as string
    await project.close()

    // 4. Back to Express, on the upgraded table: the same sessions, with the project's changes.
    const again = await startExpress(t, db, variant)
    for (const c of [anonymous, annLaptop, bob, carol]) (c as { base: string }).base = again.base
    const me = async (c: Client) => (await c.request('/me')).json() as { id: string, session: Record<string, unknown> }
    t.match(await me(anonymous), { id: ids.anonymous, session: { views: 3, cart: ['apple', 'pear'] } }, 'Express sees the anonymous session with the project\'s change')
    t.match(await me(annLaptop), { id: ids.annLaptop, session: { views: 2, user: { ...ANN, name: 'ann' } } }, 'and ann\'s, her own user fields next to the mapped name')
    t.match(await me(bob), { id: ids.bob, session: { user: { name: 'bob' } } }, 'and bob\'s')
    t.match(await me(carol), { id: carolId, session: { user: { name: 'carol' } } }, 'and a session the project logged in')
    t.same((await anonymous.request('/visit')).json(), { views: 4 }, 'Express writes on the upgraded table')
    const newcomer = new Client(again.base, COOKIE)
    await newcomer.request('/visit')
    t.match(await me(newcomer), { session: { views: 1 } }, 'and creates sessions on it')
    t.match(await parsedRow(ids.anonymous!), { views: 4 })
    await again.close()
  })
}

t.test('custom column names (express-mysql-session\'s schema.columnNames) are refused with a reason, and the rows are left alone', async (t) => {
  const db = await createTestDatabase(t)
  const legacy = await startExpress(t, db, {
    label: 'custom columns',
    table: 'renamed',
    store: { createDatabaseTable: true, schema: { tableName: 'renamed', columnNames: { session_id: 'sid', expires: 'expiry', data: 'payload' } } }
  })
  await new Client(legacy.base, COOKIE).request('/visit')
  await legacy.close()
  // A configuration no retry cures: the start stops, with the reason (startup-check.ts).
  const failure = await build(t, { ...db.env, SESSION_TABLE: 'renamed', SESSION_COOKIE_NAME: COOKIE, SESSION_SECRET: SECRET }).then(() => undefined, (error: unknown) => error as Error)
  t.match(failure?.message, /^the session table renamed has no column session_id, expires, data: other column names .* are not supported; rename them .*\(SESSION_DATABASE \S+ at \S+\)$/, 'the start stops and says why')
  const [rows] = await db.pool.query<RowDataPacket[]>('SELECT * FROM renamed')
  t.equal(rows.length, 1, 'the Express app\'s row is still there')
  t.same(Object.keys(rows[0]!).sort(), ['expiry', 'payload', 'sid'], 'and the table unchanged')
})
