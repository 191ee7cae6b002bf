// `npm run bench`: the project beside the stacks people use today, on one database, under the same
// load, in one run. Prints req/s, p50/p99 latency, database queries per request and the ratio to
// the seed's Express stack, then the new-session and write paths, then reads while a million
// expired rows are cleaned up, then logins: logins/s and /health/live during a burst of them.
// docs/benchmarks.md says how to read it.
//
// Variables: BENCH_PARTS (default reads,creates,writes,cleanup,logins), BENCH_ONLY=word,word (reads of those stacks only),
// BENCH_PROJECT_ENV=NAME=value,... (extra variables for the project), BENCH_DURATION (s per measurement, default 10), BENCH_CONNECTIONS (default 32),
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
  sessionCookie, startTarget, timedRequest, writeBenchUsers, type Database, type Target
} from './harness.js'

const CLEANUP_ROWS = Number(process.env.BENCH_CLEANUP_ROWS ?? 1_000_000)
const PARTS = new Set((process.env.BENCH_PARTS ?? 'reads,creates,writes,cleanup,logins').split(','))
// A login costs a bcrypt hash, hundreds of ms: a count of logins, not a duration (a window a
// few logins long would mostly measure its own start and end), and a short one.
const LOGIN_AMOUNT = 32
// Enough to keep every thread of libuv's pool (4) hashing; under the per-address limit (20).
const LOGIN_CONNECTIONS = 8
const LOGIN_BURST = 50
// With BENCH_PARTS=reads: only the stacks whose names contain one of these comma-separated words.
const ONLY = process.env.BENCH_ONLY?.split(',')

const fixture = (name: string) => [`bench/fixtures/${name}.mjs`]

interface Measurement {
  target: string
  scenario: string
  rps: number
  p50: number
  p99: number
  queriesPerRequest: number
  /** The server process's own CPU time (user + system), µs per request. */
  cpuPerRequest: number
  errors: number
}

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
    { name: 'this project (MariaDB store)', args: projectEntry, env: projectEnv(database), cookie: 'own' },
    { name: 'this project (in-memory store, no database)', args: projectEntry, env: { ...projectEnv(database), NODE_ENV: 'development', SESSION_HOST: '' }, cookie: 'own' },
    { name: 'ceiling: bare Fastify', args: fixture('bare-fastify') },
    { name: 'ceiling: Fastify + one prepared SELECT', args: fixture('prepared-select'), env: dbEnv, cookie: 'raw-id' }
  ]
  const [seed, naive, fastifySession, project] = targets as [Target, Target, Target, Target]

  console.log(`bench: ${CONNECTIONS} connections, ${DURATION} s per measurement after ${WARMUP_SECONDS} s of warm-up, database ${database.label}`)
  if (PARTS.has('reads')) {
    const reads: Measurement[] = []
    for (const target of targets.filter((target) => !ONLY || ONLY.some((part) => target.name.includes(part)))) {
      reads.push(await measure(database, target, 'GET /session, existing session', readLoad))
    }
    printTable('Steady-state reads: GET /session with one existing session', reads)
    if (!ONLY) checkTargets(reads)
  }

  const peersAndProject = [seed, naive, fastifySession, project]
  if (PARTS.has('creates')) {
    const creates: Measurement[] = []
    for (const target of peersAndProject) creates.push(await measure(database, target, 'GET /session, no cookie', newSessionLoad))
    printTable('New sessions: GET /session without a cookie (each request creates and stores one)', creates)
  }

  if (PARTS.has('writes')) {
    const writes: Measurement[] = []
    for (const target of peersAndProject) writes.push(await measure(database, target, 'PUT /session/state', writeLoad))
    printTable('Writes: PUT /session/state with a new value each time, each connection its own session', writes)
  }

  if (PARTS.has('cleanup') && CLEANUP_ROWS > 0) await measureCleanup(database, project)
  if (PARTS.has('logins')) await measureLogins(database)
}

/** The load for a stack, given `sessions()`, which creates a new session and returns its cookie. */
type Load = (base: string, sessions: () => Promise<string>) => Promise<autocannon.Options>

const readLoad: Load = async (base, sessions) => ({ url: `${base}/session`, headers: { cookie: await sessions() } })

const newSessionLoad: Load = async (base) => ({ url: `${base}/session` })

/** Each connection writes its own session, as different users do (one row for all would measure its lock). */
const writeLoad: Load = async (base, sessions) => {
  const cookies: string[] = []
  for (let i = 0; i < CONNECTIONS; i++) cookies.push(await sessions())
  let n = 0
  let next = 0
  return {
    url: `${base}/session/state`,
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    requests: [{
      setupRequest: (request, context: { cookie?: string }) => {
        context.cookie ??= cookies[next++ % cookies.length]
        return { ...request, headers: { ...request.headers, cookie: context.cookie as string }, body: JSON.stringify({ n: n++ }) }
      }
    }]
  }
}

async function measure (database: Database, target: Target, scenario: string, load: Load): Promise<Measurement> {
  const server = await startTarget(target)
  try {
    const options = await load(server.base, () => sessionCookie(database, target))
    await fire({ ...options, duration: WARMUP_SECONDS })
    const before = await database.questions()
    const cpuBefore = server.cpuMicros()
    const result = await fire({ ...options, duration: DURATION })
    const cpu = server.cpuMicros() - cpuBefore
    const after = await database.questions()
    // The second SHOW STATUS counts itself.
    const queries = after - before - 1
    return {
      target: target.name,
      scenario,
      rps: result.requests.total / DURATION,
      p50: result.latency.p50,
      p99: result.latency.p99,
      queriesPerRequest: queries / result.requests.total,
      cpuPerRequest: cpu / result.requests.total,
      errors: result.errors + result.timeouts + result.non2xx
    }
  } finally {
    await server.stop()
  }
}

function printTable (title: string, rows: Measurement[]): void {
  const seed = rows[0]?.rps ?? 1
  console.log(`\n${title}`)
  console.log('| stack | req/s | p50 ms | p99 ms | queries/req | server CPU µs/req | vs seed | non-2xx+errors |')
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |')
  for (const row of rows) {
    console.log(`| ${row.target} | ${Math.round(row.rps)} | ${row.p50} | ${row.p99} | ${row.queriesPerRequest.toFixed(2)} | ${Math.round(row.cpuPerRequest)} | ${(row.rps / seed).toFixed(2)}x | ${row.errors} |`)
  }
}

/** The targets, as ratios within this run. */
function checkTargets (reads: Measurement[]): void {
  const [seed, naive, , project] = reads as [Measurement, Measurement, Measurement, Measurement]
  const checks: Array<[string, boolean, string]> = [
    ['>= 2.0x the seed stack', project.rps >= 2 * seed.rps, `${(project.rps / seed.rps).toFixed(2)}x`],
    ['>= 1.5x the naive port', project.rps >= 1.5 * naive.rps, `${(project.rps / naive.rps).toFixed(2)}x`],
    ['<= 1.05 queries per request', project.queriesPerRequest <= 1.05, project.queriesPerRequest.toFixed(3)]
  ]
  console.log('\nTargets for this project\'s steady-state reads')
  for (const [label, holds, value] of checks) console.log(`- ${label}: ${value} ${holds ? 'holds' : 'DOES NOT HOLD'}`)
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

/** The nearest-rank percentile. */
function percentile (values: number[], p: number): number {
  const sorted = [...values].sort((x, y) => x - y)
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN
}

await main()
