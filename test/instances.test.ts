import { setTimeout as sleep } from 'node:timers/promises'
import type { ResultSetHeader, RowDataPacket } from 'mysql2/promise'
import t from 'tap'
import { LEASE_TABLE } from '../src/session/lease.js'
import { maintenanceLeaseName } from '../src/session/mysql-store.js'
import { Client, baseEnv, createTestDatabase, sameBrowserOn } from './helper.js'
import { loginAs, writeUsersFile } from './support/accounts.js'
import { scrape, type Scrape } from './support/metrics.js'
import { freePort } from './support/private-mariadb.js'
import { startServer } from './support/server-process.js'

// Two real server processes (src/server.ts) on one database, as behind a load balancer. Nothing
// is cached per process: every request reads the row, so what one instance ends, the other sees
// ended at its next request. The cleanup runs every 200 ms on both.

const db = await createTestDatabase(t)
const env = {
  ...baseEnv,
  ...db.env,
  LOG_LEVEL: 'info',
  HOST: '127.0.0.1',
  AUTH_USERS_FILE: writeUsersFile(t, { ann: 'correct horse' }),
  SESSION_CLEANUP_INTERVAL: '200'
}

async function instance (): Promise<string> {
  const port = await freePort()
  const server = await startServer({ ...env, PORT: String(port) })
  t.teardown(async () => {
    server.child.kill('SIGTERM')
    await server.exited
  })
  return `http://127.0.0.1:${port}`
}

const [a, b] = await Promise.all([instance(), instance()])

const rows = async (where: string, values: unknown[] = []) => {
  const [[row]] = await db.pool.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM sessions WHERE ${where}`, values)
  return Number(row?.n)
}

t.test('a session created on A is read on B', async (t) => {
  const onA = new Client(a)
  t.equal((await loginAs(onA, 'ann', 'correct horse')).status, 200)
  t.equal((await onA.request('/session/state', { method: 'PUT', body: { theme: 'dark' } })).status, 200)
  const seen = (await sameBrowserOn(b, onA).request('/session')).json()
  t.match(seen, { authenticated: true, user: { name: 'ann' }, state: { theme: 'dark' } })
})

t.test('logout on B: the cookie is anonymous on A at the very next request', async (t) => {
  const onA = new Client(a)
  await loginAs(onA, 'ann', 'correct horse')
  t.equal((await sameBrowserOn(b, onA).request('/session/logout', { method: 'POST' })).status, 204)
  const next = await onA.request('/session')
  t.equal(next.json().authenticated, false, 'A does not know the session any more')
})

t.test('DELETE /session/all/:id on B ends the session on A at once', async (t) => {
  const laptop = new Client(a)
  const phone = new Client(b)
  await loginAs(laptop, 'ann', 'correct horse')
  await loginAs(phone, 'ann', 'correct horse')
  t.equal((await laptop.request('/session')).json().authenticated, true, 'control: the laptop is logged in on A')
  const laptopHandle = ((await laptop.request('/session/all')).json() as Array<{ id: string, current: boolean }>).find((entry) => entry.current)?.id
  t.equal((await phone.request(`/session/all/${laptopHandle}`, { method: 'DELETE' })).status, 204)
  t.equal((await laptop.request('/session')).json().authenticated, false, 'the laptop is logged out on A')
})

/** Polls both instances' metrics until `done` holds for each (or gives up after 30 s). */
async function untilBoth (done: (metrics: Scrape, index: number) => boolean): Promise<Scrape[]> {
  for (let tries = 0; ; tries++) {
    const both = await Promise.all([scrape(a), scrape(b)])
    if (both.every(done) || tries === 300) return both
    await sleep(100)
  }
}

t.test('the cleanup runs on one instance at a time: neither deletes while another holds the lease', async (t) => {
  const lease = maintenanceLeaseName('cleanup', db.name, 'sessions')
  // The test takes the lease as a third instance does: only while nobody holds it. Overwriting a
  // held lease would let the holder's batch, already under way, run after the rows go in.
  for (let tries = 0; ; tries++) {
    const [taken] = await db.pool.query<ResultSetHeader>(
      `UPDATE ${LEASE_TABLE} SET holder = 'third', held_until = ROUND(UNIX_TIMESTAMP(NOW(3)) * 1000) + 60000 WHERE name = ? AND held_until < ROUND(UNIX_TIMESTAMP(NOW(3)) * 1000)`, [lease])
    if (taken.affectedRows === 1) break
    if (tries === 300) throw new Error('the instances never let go of the cleanup lease')
    await sleep(10)
  }

  const before = await Promise.all([scrape(a), scrape(b)])
  const expired = Array.from({ length: 30 }, (_, i) => [`expired${i}`, Math.floor(Date.now() / 1000) - 10, '{"cookie":{}}'])
  await db.pool.query('INSERT INTO sessions (session_id, expires, data) VALUES ?', [expired])

  // Waits for events, not for time: each instance has tried three more times (a claim each).
  const attempts = (metrics: Scrape, index: number) => metrics.storeQueries('cleanup lease') - (before[index] as Scrape).storeQueries('cleanup lease')
  const during = await untilBoth((metrics, index) => attempts(metrics, index) >= 3)
  for (const [index, metrics] of during.entries()) {
    const name = index === 0 ? 'A' : 'B'
    t.ok(attempts(metrics, index) >= 3, `${name} tried to clean up ${attempts(metrics, index)} times`)
    t.equal(metrics.storeQueries('cleanup'), (before[index] as Scrape).storeQueries('cleanup'), `${name} ran no cleanup batch`)
  }
  t.equal(await rows('expires < UNIX_TIMESTAMP()'), 30, 'and the expired rows are all there')

  await db.pool.query(`UPDATE ${LEASE_TABLE} SET held_until = 0 WHERE name = ?`, [lease])
  for (let tries = 0; tries < 300 && await rows('expires < UNIX_TIMESTAMP()') > 0; tries++) await sleep(100)
  t.equal(await rows('expires < UNIX_TIMESTAMP()'), 0, 'once the lease is free, an instance removes them')
  const after = await Promise.all([scrape(a), scrape(b)])
  const batches = (index: 0 | 1) => (after[index] as Scrape).storeQueries('cleanup') - (before[index] as Scrape).storeQueries('cleanup')
  t.ok(batches(0) + batches(1) > 0, `batches after the release: A ${batches(0)}, B ${batches(1)}`)
})

t.test('of two instances cleaning every 200 ms, one cleans per interval', async (t) => {
  const cleanups = async () => (await Promise.all([scrape(a), scrape(b)])).reduce((sum, metrics) => sum + metrics.storeQueries('cleanup'), 0)
  const first = await cleanups()
  const started = Date.now()
  await sleep(3000)
  const runs = await cleanups() - first
  const intervals = (Date.now() - started) / 200
  // Each cleanup is one batch here (the table is small): runs counts cleanups. Both timers fire
  // every interval, so without the lease there would be about twice as many.
  t.ok(runs <= intervals + 2, `${runs} cleanups in ${intervals.toFixed(1)} intervals: never two in one`)
  t.ok(runs >= intervals * 0.6, `${runs} cleanups in ${intervals.toFixed(1)} intervals: the intervals are not skipped`)
})
