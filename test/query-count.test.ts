import type { RowDataPacket } from 'mysql2/promise'
import t, { type Test } from 'tap'
import { Client, build, httpRequest, listen, privateDatabase } from './helper.js'
import { loginAs, writeUsersFile } from './support/accounts.js'
import { MARIADBD } from './support/private-mariadb.js'

// What each request costs the database, counted by the server itself: MariaDB's `Questions` counts
// every statement a client sends, and on a private server the only client is this file.

const needsMariadbd = { skip: MARIADBD ? false : 'mariadbd is not installed' }

async function setUp (t: Test, env: Record<string, string> = {}) {
  const db = await privateDatabase(t)
  const app = await build(t, { ...db.env, ...env })
  const base = await listen(app)
  await app.sessionStore.ping()
  /** Statements sent since the last call, this call's own SHOW STATUS left out. */
  let last = 0
  const statementsSince = async () => {
    const [rows] = await db.admin.query<RowDataPacket[]>("SHOW GLOBAL STATUS LIKE 'Questions'")
    const now = Number(rows[0]?.Value)
    const delta = now - last - 1
    last = now
    return delta
  }
  // The store keys unkeyed rows in the background after its first start (a few statements): let
  // that finish before counting.
  for (let quiet = 0, tries = 0; quiet < 2 && tries < 40; tries++) {
    await new Promise((resolve) => setTimeout(resolve, 50))
    quiet = (await statementsSince()) === 0 ? quiet + 1 : 0
  }
  return { db, app, base, statementsSince }
}

t.test('reading an existing, unchanged session is one query', needsMariadbd, async (t) => {
  const { base, statementsSince } = await setUp(t)
  const client = new Client(base)
  await client.request('/session')
  t.ok(client.cookie, 'a session was created')
  await new Promise((resolve) => setTimeout(resolve, 100))
  await statementsSince()
  const reads = 100
  for (let i = 0; i < reads; i++) t.equal((await client.request('/session')).status, 200)
  await new Promise((resolve) => setTimeout(resolve, 100)) // a touch would be written after the answer
  const statements = await statementsSince()
  t.equal(statements, reads, `${statements} statements for ${reads} reads: one SELECT each, no touch`)
})

t.test('routes that need no session make no query and set no cookie', needsMariadbd, async (t) => {
  const { base, statementsSince } = await setUp(t)
  for (const path of ['/health/live', '/health/ready', '/docs/json', '/docs', '/']) {
    await statementsSince()
    const res = await httpRequest(base + path)
    t.equal(res.status, 200, path)
    t.notOk(res.headers['set-cookie'], `${path}: no cookie`)
    t.equal(await statementsSince(), 0, `${path}: no statement (readiness is a protocol ping)`)
  }
})

t.test('an unmodified session is touched only when its stored expiry lags by more than SESSION_TOUCH_AFTER', needsMariadbd, async (t) => {
  const { db, base } = await setUp(t, { SESSION_MAX_AGE: '600000', SESSION_TOUCH_AFTER: '4000' })
  const storedExpiry = async () => {
    const [rows] = await db.admin.query<RowDataPacket[]>('SELECT expires FROM sessions')
    t.equal(rows.length, 1, 'one session')
    return Number(rows[0]?.expires)
  }
  const client = new Client(base)
  await client.request('/session')
  const first = await storedExpiry()

  await new Promise((resolve) => setTimeout(resolve, 1300))
  await client.request('/session')
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.equal(await storedExpiry(), first, 'after 1.3 s the row is left alone (touching it would move it by a second)')

  await new Promise((resolve) => setTimeout(resolve, 3200))
  await client.request('/session')
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.ok(await storedExpiry() >= first + 4, 'after 4.5 s it is extended')
})

t.test('with SESSION_TOUCH_AFTER=0 every read extends the stored expiry', needsMariadbd, async (t) => {
  const { base, statementsSince } = await setUp(t, { SESSION_TOUCH_AFTER: '0' })
  const client = new Client(base)
  await client.request('/session')
  await new Promise((resolve) => setTimeout(resolve, 1100))
  await statementsSince()
  await client.request('/session')
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.equal(await statementsSince(), 2, 'a SELECT and the touch')
})

t.test('parallel reads of one session stay at one query each', needsMariadbd, async (t) => {
  const { base, statementsSince } = await setUp(t)
  const client = new Client(base)
  await client.request('/session')
  const parallelReads = () => Promise.all(Array.from({ length: 50 }, () => httpRequest(`${base}/session`, { headers: { cookie: client.cookie as string } })))
  // The first burst opens the pool's connections, each with its one SET SESSION of lock timeouts.
  await parallelReads()
  await new Promise((resolve) => setTimeout(resolve, 100))
  await statementsSince()
  const results = await parallelReads()
  t.same([...new Set(results.map((res) => res.status))], [200])
  await new Promise((resolve) => setTimeout(resolve, 100))
  const statements = await statementsSince()
  t.ok(statements <= 50 * 1.05, `${statements} statements for 50 parallel reads: at most 1.05 each`)
})

t.test('the answer never waits for the touch', needsMariadbd, async (t) => {
  const { db, base } = await setUp(t, { SESSION_TOUCH_AFTER: '0' })
  const client = new Client(base)
  await client.request('/session')
  // Another transaction holds the row: reads go on (InnoDB reads do not wait for row locks), the
  // touch's UPDATE waits for the lock until the pool's 1 s lock-wait timeout.
  const holder = await db.admin.getConnection()
  t.teardown(() => holder.release())
  await holder.query('START TRANSACTION')
  await holder.query('SELECT * FROM sessions FOR UPDATE')
  await new Promise((resolve) => setTimeout(resolve, 1100)) // the stored expiry now lags: a touch is due
  const started = Date.now()
  const res = await client.request('/session')
  const ms = Date.now() - started
  t.equal(res.status, 200)
  t.equal(res.json().authenticated, false, 'the whole body arrived')
  t.ok(ms < 700, `answered in ${ms} ms, not after the touch's lock wait (express-session holds back the last byte until its touch returns)`)
  await holder.query('ROLLBACK')
})

t.test('a login is three statements: read the anonymous session, delete it, insert the new one', needsMariadbd, async (t) => {
  const { base, statementsSince } = await setUp(t, { AUTH_USERS_FILE: writeUsersFile(t, { ann: 'correct horse' }) })
  const client = new Client(base)
  await client.request('/session')
  await new Promise((resolve) => setTimeout(resolve, 100))
  await statementsSince()
  t.equal((await loginAs(client, 'ann', 'correct horse')).status, 200)
  await new Promise((resolve) => setTimeout(resolve, 100))
  // express-session saves a session regenerated in a route once more while ending the answer; the
  // store recognises that it holds exactly that row already.
  t.equal(await statementsSince(), 3, 'no second INSERT of the same row')
  t.equal((await client.request('/session')).json().authenticated, true)
})
