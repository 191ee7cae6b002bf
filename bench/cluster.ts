// `npm run bench:cluster` (as root): what the Galera cluster of `npm run cluster` costs. One stack
// (3 Galera nodes, 3 app instances, HAProxy), one logged-in user, then:
// 1. causal reads at the database: the session's row read on node 1 with wsrep_sync_wait = 0 and
//    = 1 (alternating blocks), on an idle cluster and while node 2 takes writes; then GET /session
//    through instance 1 directly for context (the app always reads with wsrep_sync_wait = 1);
// 2. GET /session through HAProxy in front of instance 1 only, then in front of all 3: req/s, p99
//    and the CPU time of every process of the stack per request. On 2 cores this measures CPU per
//    request, not scaling: 3 instances cannot add cores.
// docs/cluster.md says how to read it. About 2 minutes, most of it the cluster's start and the loads.
import { readdirSync, readFileSync } from 'node:fs'
import autocannon from 'autocannon'
import { createConnection, type Connection, type RowDataPacket } from 'mysql2/promise'
import { startHaproxy } from '../scripts/cluster/haproxy.js'
import { DATABASE, startClusterStack, type ClusterStack } from '../scripts/cluster/stack.js'

const READS = 3000
const BLOCKS = 6
const HTTP_CONTEXT_SECONDS = 8
const HTTP_CONTEXT_CONNECTIONS = 10
const PROXY_SECONDS = 10
const PROXY_CONNECTIONS = 20
const WARMUP_SECONDS = 3
const FILLER_ROWS = 200
const READ_SQL = 'SELECT data, expires, user_key FROM sessions WHERE session_id = ?'

interface Timing { mean: number, p99: number }

interface ReadRow { load: string, off: Timing, on: Timing }

interface HttpRow { label: string, rps: number, p50: number, p99: number, errors: number }

interface ProxyRow extends HttpRow { cpu: Record<Part, number> }

type Part = 'app' | 'mariadbd' | 'haproxy'

async function main (): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('npm run bench:cluster starts the Galera nodes as the mysql user, so it runs as root')
  const started = Date.now()
  const log = (line: string) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)} s] ${line}`)
  // The instances as `npm run cluster` runs them: LOG_LEVEL info, cleanup timer at its default (15 min).
  const stack = await startClusterStack({ instances: 3, log })
  try {
    await run(stack, log)
  } finally {
    log('stopping the stack')
    await stack.stop()
  }
}

async function run (stack: ClusterStack, log: (line: string) => void): Promise<void> {
  const cookie = await login(stack)
  const sessionId = sessionIdOf(cookie)
  const reader = await connect(stack, 0)
  const writer = await connect(stack, 1)
  try {
    // Other rows for the writer: it never touches the row that is read.
    const fillers = Array.from({ length: FILLER_ROWS }, (_, i) => `bench-cluster-filler-${i}`)
    await writer.query('INSERT INTO sessions (session_id, expires, data) VALUES ? ON DUPLICATE KEY UPDATE expires = VALUES(expires)',
      [fillers.map((id) => [id, Math.floor(Date.now() / 1000) + 3600, '{"cookie":{}}'])])

    const reads: ReadRow[] = []
    const http: HttpRow[] = []
    const instance1 = stack.instances[0]?.url as string
    log(`causal reads: ${READS} reads per setting on node 1, idle cluster`)
    reads.push({ load: 'idle cluster', ...await readCost(reader, sessionId) })
    http.push(await httpContext('idle cluster', instance1, cookie))

    log('causal reads: the same while node 2 takes UPDATEs of other rows in a loop')
    const writes = startWriter(writer, fillers)
    try {
      reads.push({ load: 'node 2 writing', ...await readCost(reader, sessionId) })
      http.push(await httpContext('node 2 writing', instance1, cookie))
    } finally {
      log(`writer stopped after ${await writes.stop()} UPDATEs`)
    }

    log(`1 vs 3 instances: ${PROXY_CONNECTIONS} connections, ${PROXY_SECONDS} s each after ${WARMUP_SECONDS} s of warm-up`)
    // app2 and app3 have served nothing yet: warm their JIT as app1's is, so that the 3-instance
    // row does not count compilation as CPU per request.
    for (const instance of stack.instances.slice(1)) await fire({ url: `${instance.url}/session`, headers: { cookie }, connections: HTTP_CONTEXT_CONNECTIONS, duration: WARMUP_SECONDS })
    const proxies: ProxyRow[] = []
    const single = await startHaproxy({ config: 'app', backends: [{ host: '127.0.0.1', port: Number(new URL(instance1).port) }] })
    try {
      proxies.push(await throughProxy('HAProxy → app1', `http://127.0.0.1:${single.port}`, cookie))
    } finally {
      await single.stop()
    }
    proxies.push(await throughProxy('HAProxy → app1, app2, app3', stack.url, cookie))

    printTables(reads, http, proxies)
  } finally {
    await reader.end().catch(() => {})
    await writer.end().catch(() => {})
  }
}

/** POST /session/login as the stack's first account; the `sid=...` cookie of the answer. */
async function login (stack: ClusterStack): Promise<string> {
  const res = await fetch(`${stack.url}/session/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: stack.accounts.names[0], password: stack.accounts.password })
  })
  const cookie = res.headers.getSetCookie().find((line) => line.startsWith('sid='))?.split(';')[0]
  if (res.status !== 200 || !cookie) throw new Error(`login answered ${res.status} ${await res.text()}`)
  const check = await fetch(`${stack.url}/session`, { headers: { cookie } })
  if ((await check.json() as { authenticated?: boolean }).authenticated !== true) throw new Error('GET /session after login: not authenticated')
  return cookie
}

/** The session id a cookie carries (`sid=s%3A<id>.<signature>`). */
function sessionIdOf (cookie: string): string {
  const value = decodeURIComponent(cookie.split('=')[1] ?? '')
  return value.slice(2, value.lastIndexOf('.'))
}

function connect (stack: ClusterStack, node: number): Promise<Connection> {
  return createConnection(`${stack.cluster.rootUrl(node)}/${DATABASE}`)
}

/**
 * READS reads of one row per setting, sequential, in BLOCKS alternating blocks (0, 1, 0, 1, ...)
 * so that a drift of the machine's load falls on both settings alike.
 */
async function readCost (db: Connection, sessionId: string): Promise<{ off: Timing, on: Timing }> {
  const samples: Record<0 | 1, number[]> = { 0: [], 1: [] }
  const perBlock = Math.ceil(READS / (BLOCKS / 2))
  // Warm-up: the prepared statement, the row in the buffer pool.
  for (let i = 0; i < 200; i++) await db.execute(READ_SQL, [sessionId])
  for (let block = 0; block < BLOCKS; block++) {
    const wait = (block % 2) as 0 | 1
    await db.query(`SET SESSION wsrep_sync_wait = ${wait}`)
    for (let i = 0; i < perBlock; i++) {
      const start = process.hrtime.bigint()
      const [rows] = await db.execute<RowDataPacket[]>(READ_SQL, [sessionId])
      samples[wait].push(Number(process.hrtime.bigint() - start) / 1000)
      if (rows.length !== 1) throw new Error('the session row is gone')
    }
  }
  await db.query('SET SESSION wsrep_sync_wait = 0')
  return { off: timing(samples[0]), on: timing(samples[1]) }
}

function timing (micros: number[]): Timing {
  const sorted = [...micros].sort((x, y) => x - y)
  return {
    mean: micros.reduce((sum, value) => sum + value, 0) / micros.length,
    p99: sorted[Math.max(0, Math.ceil(0.99 * sorted.length) - 1)] ?? NaN
  }
}

/** UPDATEs of the filler rows on node 2, one after the other, until stop() (which returns the count). */
function startWriter (db: Connection, ids: string[]): { stop: () => Promise<number> } {
  const state = { running: true }
  let count = 0
  const loop = (async () => {
    while (state.running) {
      await db.execute('UPDATE sessions SET data = ? WHERE session_id = ?', [`{"cookie":{},"n":${count}}`, ids[count % ids.length]])
      count++
    }
  })()
  return {
    stop: async () => {
      state.running = false
      await loop
      return count
    }
  }
}

function fire (options: autocannon.Options): Promise<autocannon.Result> {
  return autocannon(options)
}

function row (label: string, result: autocannon.Result, seconds: number): HttpRow {
  return {
    label,
    rps: result.requests.total / seconds,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + result.timeouts + result.non2xx
  }
}

async function httpContext (label: string, url: string, cookie: string): Promise<HttpRow> {
  const options = { url: `${url}/session`, headers: { cookie }, connections: HTTP_CONTEXT_CONNECTIONS }
  await fire({ ...options, duration: 1 })
  return row(label, await fire({ ...options, duration: HTTP_CONTEXT_SECONDS }), HTTP_CONTEXT_SECONDS)
}

async function throughProxy (label: string, url: string, cookie: string): Promise<ProxyRow> {
  const options = { url: `${url}/session`, headers: { cookie }, connections: PROXY_CONNECTIONS }
  await fire({ ...options, duration: WARMUP_SECONDS })
  const before = stackCpu()
  const result = await fire({ ...options, duration: PROXY_SECONDS })
  const after = stackCpu()
  const requests = Math.max(1, result.requests.total)
  const cpu = Object.fromEntries((Object.keys(after) as Part[]).map((part) => [part, (after[part] - before[part]) / requests])) as Record<Part, number>
  return { ...row(label, result, PROXY_SECONDS), cpu }
}

// ---- CPU time of the stack's processes, from /proc ----

interface Proc { pid: number, ppid: number, cmdline: string[], cpuMicros: number }

function readProc (pid: number): Proc | undefined {
  try {
    // Fields after "(comm) ": state is [0], ppid [1], utime [11], stime [12], in clock ticks (100/s).
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ')
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean)
    return { pid, ppid: Number(fields[1]), cmdline, cpuMicros: (Number(fields[11]) + Number(fields[12])) * 10000 }
  } catch {
    return undefined // gone meanwhile
  }
}

function partOf (cmdline: string[]): Part | undefined {
  const program = cmdline[0]?.split('/').pop()
  if (program === 'mariadbd') return 'mariadbd'
  if (program === 'haproxy') return 'haproxy'
  if (cmdline.some((arg) => arg.endsWith('src/server.ts'))) return 'app'
  return undefined
}

/**
 * utime + stime (µs) of every app instance, mariadbd and haproxy descended from this process:
 * the system MariaDB or another cluster on the machine (a test run) does not count.
 */
function stackCpu (): Record<Part, number> {
  const procs = new Map<number, Proc>()
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    const proc = readProc(Number(entry))
    if (proc) procs.set(proc.pid, proc)
  }
  const ours = (proc: Proc): boolean => {
    for (let pid = proc.ppid, hops = 0; pid > 1 && hops < 10; hops++) {
      if (pid === process.pid) return true
      pid = procs.get(pid)?.ppid ?? 0
    }
    return false
  }
  const total: Record<Part, number> = { app: 0, mariadbd: 0, haproxy: 0 }
  for (const proc of procs.values()) {
    const part = partOf(proc.cmdline)
    if (part && ours(proc)) total[part] += proc.cpuMicros
  }
  return total
}

// ---- output ----

function printTables (reads: ReadRow[], http: HttpRow[], proxies: ProxyRow[]): void {
  const us = (value: number) => Math.round(value)
  console.log(`\nCausal reads at the database: ${READS} reads of the session's row on node 1 per setting (prepared, one connection, sequential, ${BLOCKS} alternating blocks)`)
  console.log('| load | sync_wait=0 mean µs | sync_wait=0 p99 µs | sync_wait=1 mean µs | sync_wait=1 p99 µs | mean ratio | p99 ratio |')
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |')
  for (const r of reads) {
    console.log(`| ${r.load} | ${us(r.off.mean)} | ${us(r.off.p99)} | ${us(r.on.mean)} | ${us(r.on.p99)} | ${(r.on.mean / r.off.mean).toFixed(2)}x | ${(r.on.p99 / r.off.p99).toFixed(2)}x |`)
  }

  console.log(`\nContext: GET /session through app1 directly (always wsrep_sync_wait=1), ${HTTP_CONTEXT_CONNECTIONS} connections, ${HTTP_CONTEXT_SECONDS} s`)
  console.log('| load | req/s | p50 ms | p99 ms | non-2xx+errors |')
  console.log('| --- | ---: | ---: | ---: | ---: |')
  for (const h of http) console.log(`| ${h.label} | ${Math.round(h.rps)} | ${h.p50} | ${h.p99} | ${h.errors} |`)

  console.log(`\n1 vs 3 app instances: GET /session with one cookie through HAProxy, ${PROXY_CONNECTIONS} connections, ${PROXY_SECONDS} s (2 cores: CPU per request, not scaling)`)
  console.log('| path | req/s | p50 ms | p99 ms | non-2xx+errors | CPU µs/req: apps | mariadbd | haproxy | total |')
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |')
  for (const p of proxies) {
    const total = p.cpu.app + p.cpu.mariadbd + p.cpu.haproxy
    console.log(`| ${p.label} | ${Math.round(p.rps)} | ${p.p50} | ${p.p99} | ${p.errors} | ${us(p.cpu.app)} | ${us(p.cpu.mariadbd)} | ${us(p.cpu.haproxy)} | ${us(total)} |`)
  }
}

main().catch((error: unknown) => {
  console.error(error)
  process.exitCode = 1
})
