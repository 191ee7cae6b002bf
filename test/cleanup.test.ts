import type { RowDataPacket } from 'mysql2/promise'
import t, { type Test } from 'tap'
import { Client, baseEnv, build, httpRequest, listen, privateDatabase } from './helper.js'
import { MARIADBD } from './support/private-mariadb.js'
import { runProcess } from './support/server-process.js'

// The batching and the one-instance lock are in store.test.ts; these look at how a batch runs.

const needsMariadbd = { skip: MARIADBD ? false : 'mariadbd is not installed' }
const now = () => Math.floor(Date.now() / 1000)

/** One private server and one app for the file: the counters below are the server's, global. */
async function setUp (t: Test) {
  const db = await privateDatabase(t)
  const app = await build(t, db.env)
  const base = await listen(app)
  await app.sessionStore.ping()
  const insertRows = async (count: number, expires: number, prefix: string) => {
    const rows = Array.from({ length: count }, (_, i) => [`${prefix}${String(i).padStart(6, '0')}`, expires, '{"cookie":{}}'])
    await db.admin.query('INSERT INTO sessions (session_id, expires, data) VALUES ?', [rows])
  }
  /** Rows read by full table scans so far (SHOW STATUS itself adds a few). */
  const rowsScanned = async () => {
    const [rows] = await db.admin.query<RowDataPacket[]>("SHOW GLOBAL STATUS LIKE 'Handler_read_rnd_next'")
    return Number(rows[0]?.Value)
  }
  return { db, app, base, insertRows, rowsScanned }
}

const fixture = MARIADBD ? await setUp(t) : undefined
type Fixture = Awaited<ReturnType<typeof setUp>>

t.test('cleanup finds expired rows through the expires index, without scanning the live ones', needsMariadbd, async (t) => {
  const { db, app, insertRows, rowsScanned } = fixture as Fixture
  await insertRows(20000, now() + 3600, 'live')
  await insertRows(500, now() - 10, 'old')

  let before = await rowsScanned()
  await db.admin.query('SELECT COUNT(*) FROM sessions IGNORE INDEX (idx_expires) WHERE expires < ?', [now()])
  t.ok(await rowsScanned() - before >= 20500, 'the counter sees a full scan (control)')

  before = await rowsScanned()
  t.equal(await app.sessionStore.cleanupExpired(), 500)
  const scanned = await rowsScanned() - before
  t.ok(scanned < 100, `the cleanup scanned ${scanned} rows by table scan, not 20,500`)
  await db.admin.query('DELETE FROM sessions')
})

// Nearly every row expired, as after a long outage: the optimizer then walks the whole table.
t.test('a cleanup batch held up midway holds up no session read or creation', needsMariadbd, async (t) => {
  const { db, app, base, insertRows } = fixture as Fixture
  const client = new Client(base)
  await client.request('/session')
  await insertRows(2000, now() - 10, 'old')
  // Another transaction holds one expired row, so the store's batch stops there, its locks held.
  const holder = await db.admin.getConnection()
  t.teardown(() => holder.release())
  await holder.query('BEGIN')
  await holder.query('SELECT 1 FROM sessions WHERE session_id = ? FOR UPDATE', ['old001000'])
  // The batch waits on that row for the 1 s lock wait, then gives up and releases what it holds.
  let batchGaveUp = false
  const cleanup = app.sessionStore.cleanupExpired().catch(() => 0).finally(() => { batchGaveUp = true })
  await new Promise((resolve) => setTimeout(resolve, 100))

  const started = Date.now()
  // Ten new sessions: ids are random, so some fall among the rows the batch has walked over.
  const answers = await Promise.all([client.request('/session'), ...Array.from({ length: 10 }, () => httpRequest(`${base}/session`))])
  t.same(answers.map((res) => res.status), answers.map(() => 200), 'a session read and ten created')
  t.notOk(batchGaveUp, `all answered (in ${Date.now() - started} ms) while the batch still held its locks: none waited for it`)
  await holder.query('COMMIT')
  await cleanup
  await app.sessionStore.cleanupExpired()
  const [[left]] = await db.admin.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM sessions WHERE expires < ?', [now()])
  t.equal(Number(left?.n), 0, 'and the expired rows go once the batch may finish')
})

t.test('the cleanup timer is unref\'d: it alone does not keep a process alive', async (t) => {
  const exit = await runProcess(['cleanup-timer-only.ts'], { TEST_ENV: JSON.stringify({ ...baseEnv, SESSION_CLEANUP_INTERVAL: '60000' }) })
  t.equal(exit.stdout, 'cleanup scheduled every 60000 ms\n')
  t.ok(exit.ms < 10000, `the process ended by itself in ${exit.ms} ms, not after the first interval`)
})
