// `npm run bench`: the project beside its floor and the stacks people use today, on one database,
// under the same load, in one run. Prints req/s, p50/p99 latency, database queries per request,
// server CPU per request and the issue's targets as ratios for reads (and at twice the
// connections), new sessions and writes; then heap per live session, reads while a million
// expired rows are cleaned up, and logins: logins/s and /health/live during a burst of them.
// docs/benchmarks.md says how to read it.
//
// Variables: BENCH_PARTS (default reads,crowd,creates,writes,memory,cleanup,logins), BENCH_ONLY=word,word (reads of those stacks only),
// BENCH_PROJECT_ENV=NAME=value,... (extra variables for the project), BENCH_COMPARE=path/to/server.js (another build beside it), BENCH_DURATION (s per measurement, default 8), BENCH_CONNECTIONS (default 32),
// BENCH_CLEANUP_ROWS (default 1000000; 0 skips that part), BENCH_DATABASE_URL (mysql://user:pass@host:port;
// default: a private MariaDB when mariadbd is installed, else root@127.0.0.1:3306).
import { readFileSync } from 'node:fs'
import { Agent } from 'node:http'
import { verify } from '@node-rs/bcrypt'
import autocannon from 'autocannon'
import { pino } from 'pino'
import { loadConfig } from '../src/config/config.js'
import { STORE_DEADLINE_MS } from '../src/session/mysql-pool.js'
import { createMysqlStore } from '../src/session/mysql-store.js'
import {
  CONNECTIONS, DURATION, WARMUP_SECONDS, databaseEnv, fire, openDatabase, projectEntry, projectEnv, runChecked,
  placement, sessionCookie, startTarget, timedRequest, writeBenchUsers, type Database, type Target
} from './harness.js'
import { measureSideBySide, newSessionLoad, percentile, printTable, readLoad, writeLoad, type Load, type Measurement } from './measure.js'

const CLEANUP_ROWS = Number(process.env.BENCH_CLEANUP_ROWS ?? 1_000_000)
const PARTS = new Set((process.env.BENCH_PARTS ?? 'reads,crowd,creates,writes,memory,cleanup,logins').split(','))
// A login costs a bcrypt hash, hundreds of ms: a count of logins, not a duration (a window a
// few logins long would mostly measure its own start and end), and a short one.
const LOGIN_AMOUNT = 32
// Enough to keep every thread of libuv's pool (4) hashing; under the per-address limit (20).
const LOGIN_CONNECTIONS = 8
const LOGIN_BURST = 50
// With BENCH_PARTS=reads: only the stacks whose names contain one of these comma-separated words.
const ONLY = process.env.BENCH_ONLY?.split(',')

const fixture = (name: string) => [`bench/fixtures/${name}.mjs`]

async function main (): Promise<void> {
  const database = await openDatabase()
  try {
    await run(database)
  } finally {
    await database.close()
  }
}

async function run (database: Database): Promise<void> {
  await runChecked('node', ['scripts/build-if-needed.mjs'])
  const dbEnv = databaseEnv(database)
  const targets: Target[] = [
    { name: 'seed: Express 5 + express-session + express-mysql-session', args: fixture('seed-express'), env: dbEnv, cookie: 'own' },
    { name: 'naive port: @fastify/express + the same', args: fixture('naive-port'), env: dbEnv, cookie: 'own' },
    { name: '@fastify/session + express-mysql-session', args: fixture('fastify-session'), env: dbEnv, cookie: 'own' },
    { name: 'floor: @fastify/express + express-session + the project\'s store, touch off', args: fixture('pieces'), env: { ...projectEnv(database), PIECES: '' }, cookie: 'own' },
    { name: 'this project (MariaDB store)', args: projectEntry, env: projectEnv(database), cookie: 'own' },
    { name: 'this project (in-memory store, no database)', args: projectEntry, env: { ...projectEnv(database), NODE_ENV: 'development', SESSION_HOST: '' }, cookie: 'own' },
    { name: 'ceiling: bare Fastify', args: fixture('bare-fastify') },
    { name: 'ceiling: Fastify + one prepared SELECT', args: fixture('prepared-select'), env: dbEnv, cookie: 'raw-id' }
  ]
  const [seed, naive, fastifySession, floor, project] = targets as [Target, Target, Target, Target, Target]

  console.log(`bench: ${CONNECTIONS} connections, ${DURATION} s per measurement after ${WARMUP_SECONDS} s of warm-up, database ${database.label}, ${placement}`)
  if (PARTS.has('reads')) {
    const reads: Measurement[] = []
    // The floor and the project side by side (their ratio is a target), the others one by one.
    // BENCH_COMPARE=path/to/server.js: another build of the project beside them (an A/B of a change).
    const other: Target[] = process.env.BENCH_COMPARE ? [{ name: `this project, ${process.env.BENCH_COMPARE}`, args: [process.env.BENCH_COMPARE], env: projectEnv(database), cookie: 'own' }] : []
    const groups = [[seed], [naive], [fastifySession], [floor, project, ...other], ...targets.slice(5).map((target) => [target])]
    for (const group of groups) {
      const chosen = group.filter((target) => !ONLY || ONLY.some((part) => target.name.includes(part)))
      if (chosen.length > 0) reads.push(...await measureSideBySide(database, chosen, 'GET /session, existing session', readLoad, { replicas: chosen.length > 1 ? 2 : 1 }))
    }
    printTable('Steady-state reads: GET /session with one existing session', reads)
    checkGoals('steady-state reads', reads, [
      { label: 'this project\'s reads/s against the floor\'s', of: project, to: floor, bound: 0.95 },
      { label: 'this project\'s server CPU per read against the floor\'s', of: project, to: floor, field: 'cpuPerRequest', bound: 1.05, atMost: true }
    ])
    const queries = reads.find((row) => row.target === project.name)?.queriesPerRequest
    if (queries !== undefined) console.log(`- queries per read <= 1.05: ${queries.toFixed(3)} ${queries <= 1.05 ? 'holds' : 'DOES NOT HOLD'}`)
  }

  if (PARTS.has('crowd')) {
    // Twice the connections: what the tail does once requests queue in the server.
    const crowded = await measureSideBySide(database, [floor, project], 'GET /session, existing session', readLoad, { connections: 2 * CONNECTIONS })
    printTable(`Reads at ${2 * CONNECTIONS} connections (twice the others)`, crowded)
  }

  // The naive port and the project side by side (their ratio is a target), the others one by one.
  const peerGroups = [[seed], [naive, project], [fastifySession], [floor]]
  const measureGroups = async (scenario: string, load: Load) => {
    const rows: Measurement[] = []
    for (const group of peerGroups) rows.push(...await measureSideBySide(database, group, scenario, load, { replicas: group.length > 1 ? 2 : 1 }))
    // In the order of the other tables.
    return [seed, naive, fastifySession, floor, project].map((target) => rows.find((row) => row.target === target.name) as Measurement)
  }
  if (PARTS.has('creates')) {
    const creates = await measureGroups('GET /session, no cookie', newSessionLoad)
    printTable('New sessions: GET /session without a cookie (each request creates and stores one)', creates)
    checkGoals('new sessions', creates, [{ label: 'this project\'s new sessions/s against the naive port\'s', of: project, to: naive, bound: 1.2 }])
  }

  if (PARTS.has('writes')) {
    const writes = await measureGroups('PUT /session/state', writeLoad)
    printTable('Writes: PUT /session/state with a new value each time, each connection its own session', writes)
    checkGoals('writes', writes, [{ label: 'this project\'s writes/s against the naive port\'s', of: project, to: naive, bound: 1.2 }])
  }

  if (PARTS.has('memory')) await measureMemory(database)
  if (PARTS.has('cleanup') && CLEANUP_ROWS > 0) await measureCleanup(database, project)
  if (PARTS.has('logins')) await measureLogins(database)
}

/** A target of the issue: a ratio of two stacks measured in this run, printed when both were. */
interface Goal {
  label: string
  of: Target
  to: Target
  field?: 'rps' | 'cpuPerRequest'
  /** The ratio must be at least this (or, with `atMost`, at most). */
  bound: number
  atMost?: boolean
}

function checkGoals (title: string, rows: Measurement[], goals: Goal[]): void {
  const lines: string[] = []
  for (const { label, of, to, field = 'rps', bound, atMost } of goals) {
    const a = rows.find((row) => row.target === of.name)
    const b = rows.find((row) => row.target === to.name)
    if (!a || !b) continue
    const ratio = a[field] / b[field]
    const holds = atMost ? ratio <= bound : ratio >= bound
    lines.push(`- ${label} ${atMost ? '<=' : '>='} ${bound.toFixed(2)}x: ${ratio.toFixed(2)}x ${holds ? 'holds' : `DOES NOT HOLD (misses by ${(100 * Math.abs(ratio / bound - 1)).toFixed(1)}%)`}`)
  }
  if (lines.length > 0) console.log(`\nTargets: ${title}\n${lines.join('\n')}`)
}

const LIVE_SESSIONS = 10_000

/**
 * What the in-memory store holds per live session: the server's heap after a full collection,
 * before and after 10,000 requests without a cookie (each one a new stored session).
 */
async function measureMemory (database: Database): Promise<void> {
  const server = await startTarget({ name: 'this project, memory', args: projectEntry, env: { ...projectEnv(database), NODE_ENV: 'development', SESSION_HOST: '' }, heapProbe: true })
  try {
    // Warmed up on one session, so code and caches are in place before the first measurement.
    await fire({ url: `${server.base}/session`, headers: { cookie: await sessionCookie(database, { name: 'memory', args: [], cookie: 'own' }) }, amount: 2000 })
    const before = await server.memory()
    const created = await fire({ url: `${server.base}/session`, amount: LIVE_SESSIONS })
    const after = await server.memory()
    const perSession = (field: 'heapUsed' | 'rss') => (after[field] - before[field]) / created['2xx']
    console.log(`\nMemory: ${created['2xx']} new sessions in the in-memory store (heap after a full collection)`)
    console.log('| measurement | before | after | per session |')
    console.log('| --- | ---: | ---: | ---: |')
    const mib = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MiB`
    console.log(`| V8 heap used | ${mib(before.heapUsed)} | ${mib(after.heapUsed)} | ${Math.round(perSession('heapUsed'))} B |`)
    console.log(`| resident set | ${mib(before.rss)} | ${mib(after.rss)} | ${Math.round(perSession('rss'))} B |`)
    console.log(`${LIVE_SESSIONS} live sessions: ${mib(perSession('heapUsed') * LIVE_SESSIONS)} of heap`)
  } finally {
    await server.stop()
  }
}

/**
 * A million expired rows, then reads against the project while its own cleanup (the code the
 * server's timer runs) deletes them in batches: p99 during the cleanup against p99 without it.
 */
async function measureCleanup (database: Database, project: Target): Promise<void> {
  const server = await startTarget(project)
  try {
    const cookie = await sessionCookie(database, project)
    console.log(`\nCleanup: inserting ${CLEANUP_ROWS} expired rows`)
    await database.pool.query(`INSERT INTO sessions (session_id, expires, data)
      SELECT CONCAT('expired-', seq), UNIX_TIMESTAMP() - 3600, '{"cookie":{"originalMaxAge":1000}}' FROM seq_1_to_${CLEANUP_ROWS}`)
    const options = await readLoad(server.base, async () => cookie)
    await fire({ ...options, duration: WARMUP_SECONDS })
    const quiet = await fire({ ...options, duration: DURATION })

    // The store the server builds from the same variables, so the cleanup is exactly its own.
    const { pool, store } = createMysqlStore(loadConfig(projectEnv(database)).config, { deadlineMs: STORE_DEADLINE_MS, log: pino({ level: 'silent' }) })
    let instance: autocannon.Instance | undefined
    const load = new Promise<autocannon.Result>((resolve, reject) => {
      instance = autocannon({ connections: CONNECTIONS, ...options, duration: 3600 }, (error, result) => error ? reject(error) : resolve(result))
    })
    const started = Date.now()
    const removed = await store.cleanupExpired()
    const cleanupMs = Date.now() - started
    instance?.stop()
    const during = await load
    await store.close()
    await pool.end()
    console.log('| reads | req/s | p50 ms | p99 ms | errors |')
    console.log('| --- | ---: | ---: | ---: | ---: |')
    console.log(`| without cleanup | ${Math.round(quiet.requests.average)} | ${quiet.latency.p50} | ${quiet.latency.p99} | ${quiet.errors + quiet.non2xx} |`)
    console.log(`| during cleanup | ${Math.round(during.requests.average)} | ${during.latency.p50} | ${during.latency.p99} | ${during.errors + during.non2xx} |`)
    console.log(`removed ${removed} rows in ${(cleanupMs / 1000).toFixed(1)} s; p99 during/without = ${(during.latency.p99 / quiet.latency.p99).toFixed(2)} (target <= 2.00: ${during.latency.p99 <= 2 * quiet.latency.p99 ? 'holds' : 'DOES NOT HOLD'})`)
  } finally {
    await server.stop()
  }
}

/**
 * Logins at the cost `npm run users -- add` writes: logins/s under a steady load, then
 * /health/live while 50 logins arrive at once. Each login of the burst is its own user from its own
 * loopback address (Linux routes all of 127.0.0.0/8 to lo), so neither throttle turns any away.
 */
async function measureLogins (database: Database): Promise<void> {
  const users = writeBenchUsers(LOGIN_BURST)
  // The ceiling: the hashes alone, as many at once as the steady load keeps going, in this process.
  const hash = readFileSync(users.path, 'utf8').split('\n')[0]?.split(':')[1] as string
  const hashStarted = performance.now()
  await Promise.all(Array.from({ length: 2 * LOGIN_CONNECTIONS }, () => verify(users.password, hash)))
  const hashesPerSecond = 2 * LOGIN_CONNECTIONS / ((performance.now() - hashStarted) / 1000)
  const server = await startTarget({ name: 'this project, logins', args: projectEntry, env: { ...projectEnv(database), AUTH_USERS_FILE: users.path } })
  const agents = Array.from({ length: LOGIN_BURST }, (_, i) => new Agent({ localAddress: `127.0.0.${i + 2}` }))
  try {
    const url = `${server.base}/session/login`
    const credentials = (i: number) => ({ username: `bench${i}`, password: users.password })
    // Each connection logs in as its own user: a success resets that user's count, as in life.
    let next = 0
    const options: autocannon.Options = {
      url,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      connections: LOGIN_CONNECTIONS,
      requests: [{
        setupRequest: (request, context: { body?: string }) => {
          context.body ??= JSON.stringify(credentials(next++))
          return { ...request, body: context.body }
        }
      }]
    }
    await fire({ ...options, amount: LOGIN_CONNECTIONS })
    const steadyStarted = performance.now()
    const steady = await fire({ ...options, amount: LOGIN_AMOUNT })
    const steadySeconds = (performance.now() - steadyStarted) / 1000

    const probe = async () => (await timedRequest(`${server.base}/health/live`)).ms
    const quiet: number[] = []
    for (let i = 0; i < 100; i++) quiet.push(await probe())

    const state = { pending: true }
    const started = performance.now()
    const burst = Promise.all(agents.map((agent, i) => timedRequest(url, { method: 'POST', body: credentials(i), agent })))
      .finally(() => { state.pending = false })
    const during: number[] = []
    while (state.pending) {
      during.push(await probe())
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    const burstSeconds = (performance.now() - started) / 1000
    const answers = await burst
    const ok = answers.filter((answer) => answer.status === 200).length

    const ms = (value: number) => value.toFixed(1)
    console.log(`\nLogins: POST /session/login at bcrypt cost ${users.cost} (what npm run users -- add writes)`)
    console.log('| measurement | result |')
    console.log('| --- | ---: |')
    console.log(`| bcrypt alone: ${2 * LOGIN_CONNECTIONS} checks at once, no server | ${hashesPerSecond.toFixed(1)} checks/s |`)
    console.log(`| ${LOGIN_AMOUNT} logins on ${LOGIN_CONNECTIONS} connections | ${(steady['2xx'] / steadySeconds).toFixed(1)} logins/s in ${steadySeconds.toFixed(1)} s (p50 ${steady.latency.p50} ms, p99 ${steady.latency.p99} ms, ${steady.non2xx + steady.errors + steady.timeouts} non-2xx+errors) |`)
    console.log(`| /health/live alone, ${quiet.length} probes: p50 / p99 | ${ms(percentile(quiet, 50))} / ${ms(percentile(quiet, 99))} ms |`)
    console.log(`| a burst of ${LOGIN_BURST} simultaneous logins | ${ok} answered 200 in ${burstSeconds.toFixed(1)} s (${(ok / burstSeconds).toFixed(1)} logins/s) |`)
    console.log(`| /health/live during the burst, ${during.length} probes: p50 / p99 / max | ${ms(percentile(during, 50))} / ${ms(percentile(during, 99))} / ${ms(Math.max(...during))} ms |`)
  } finally {
    for (const agent of agents) agent.destroy()
    await server.stop()
    users.remove()
  }
}

await main()
