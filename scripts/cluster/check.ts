// Self-check of the cluster launchers: `npx tsx scripts/cluster/check.ts` (as root).
// Galera: replication, kill -9 of a node (write stall on the survivors), IST rejoin; then
// haproxy-galera skipping a desynced node; then that nothing is left running. Prints timings.
import { execFileSync } from 'node:child_process'
import { readFileSync, statSync } from 'node:fs'
import { createConnection, type RowDataPacket } from 'mysql2/promise'
import { startGaleraCluster, sleep } from './galera.js'
import { startGaleraProxy } from './haproxy.js'

const t0 = Date.now()
const log = (line: string) => process.stdout.write(`[${((Date.now() - t0) / 1000).toFixed(1)}s] ${line}\n`)
const timings: Record<string, number> = {}

function assert (condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`check failed: ${message}`)
}

async function sql (url: string, statement: string): Promise<RowDataPacket[]> {
  const connection = await createConnection(url)
  try {
    const [rows] = await connection.query(statement)
    return rows as RowDataPacket[]
  } finally {
    await connection.end()
  }
}

/** Processes still running with one of `dirs` in their command line: every child we start
 *  has its temp dir (or deploy/galera-check.mjs) there, the system MariaDB has not. */
function leftovers (dirs: string[]): string[] {
  const ps = execFileSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' })
  return ps.split('\n').filter((line) => dirs.some((dir) => line.includes(dir)))
}

let started = Date.now()
const cluster = await startGaleraCluster({ log })
timings['cluster start (3 nodes Synced)'] = Date.now() - started
const [node1, node2, node3] = cluster.nodes
assert(node1 && node2 && node3, 'three nodes')
const dirs = cluster.nodes.map((node) => node.logFile.replace(/\/node\d+\/node\.log$/, ''))
try {
  log(`hosts ${cluster.hosts}`)
  await sql(cluster.rootUrl(0), 'CREATE DATABASE check_db')
  await sql(cluster.rootUrl(0), 'CREATE TABLE check_db.t (id INT AUTO_INCREMENT PRIMARY KEY, phase VARCHAR(16))')
  await sql(cluster.rootUrl(0), "INSERT INTO check_db.t (phase) VALUES ('before')")
  const onNode3 = await sql(cluster.rootUrl(2), "SELECT COUNT(*) AS n FROM check_db.t WHERE phase = 'before'")
  assert(onNode3[0]?.n === 1, 'row written on node 1 is read on node 3')
  log('write on node 1 read on node 3')

  // kill -9 of node 2: the first commit on the survivors waits until node 2 is evicted.
  await node2.kill()
  started = Date.now()
  await sql(cluster.rootUrl(0), "INSERT INTO check_db.t (phase) VALUES ('during')")
  timings['write stall after kill -9 (node 1)'] = Date.now() - started
  for (let i = 0; i < 20; i++) await sql(cluster.rootUrl(i % 2 === 0 ? 0 : 2), "INSERT INTO check_db.t (phase) VALUES ('during')")
  log('21 writes on nodes 1 and 3 while node 2 is down')

  const offset = statSync(node2.logFile).size
  started = Date.now()
  await node2.start()
  timings['rejoin of node 2 (recover + IST + Synced)'] = Date.now() - started
  const rejoinLog = readFileSync(node2.logFile, 'utf8').slice(offset)
  assert(/Receiving IST: \d+ writesets/.test(rejoinLog), 'node 2 rejoined by IST')
  assert(!rejoinLog.includes('rsync SST completed'), 'node 2 did not need a full SST')
  const onNode2 = await sql(cluster.rootUrl(1), "SELECT COUNT(*) AS n FROM check_db.t WHERE phase = 'during'")
  assert(onNode2[0]?.n === 21, `node 2 sees the 21 rows written while it was down (saw ${onNode2[0]?.n})`)
  log(`node 2 rejoined by IST: ${rejoinLog.match(/Receiving IST: .*/)?.[0]}`)

  // haproxy-galera: a desynced node gets no new connections.
  const proxy = await startGaleraProxy(cluster)
  dirs.push('haproxy-galera-', 'galera-check.mjs')
  try {
    const proxyUrl = `mysql://root@127.0.0.1:${proxy.port}`
    const ports = async () => {
      const seen: number[] = []
      for (let i = 0; i < 20; i++) seen.push(Number((await sql(proxyUrl, 'SELECT @@port AS port'))[0]?.port))
      return seen
    }
    const before = new Set(await ports())
    assert(before.size === 3, `20 connections through haproxy reach all 3 nodes (saw ${[...before]})`)
    await sql(cluster.rootUrl(2), 'SET GLOBAL wsrep_desync = ON')
    started = Date.now()
    await sleep(1500) // 2 failed checks at 500 ms, and a margin
    const during = await ports()
    assert(!during.includes(node3.sqlPort), `desynced node 3 (${node3.sqlPort}) gets no connection: ${during}`)
    log(`node 3 desynced: 20 connections went to ${[...new Set(during)]}`)
    await sql(cluster.rootUrl(2), 'SET GLOBAL wsrep_desync = OFF')
    await sleep(1500)
    const after = new Set(await ports())
    assert(after.has(node3.sqlPort), 'node 3 is back in haproxy after wsrep_desync = OFF')
    log('node 3 back in rotation')
  } finally {
    await proxy.stop()
  }
} finally {
  started = Date.now()
  await cluster.destroy()
  timings.destroy = Date.now() - started
}

await sleep(200)
const left = leftovers(dirs)
assert(left.length === 0, `nothing of ours left running:\n${left.join('\n')}`)
log('destroyed, no mariadbd/haproxy/galera-check of ours left')
for (const [what, ms] of Object.entries(timings)) process.stdout.write(`  ${what}: ${ms} ms\n`)
process.stdout.write('OK\n')
