// What the benchmark and the profiler share: the database, a stack started as its own process,
// its session cookie, and the load generator.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { request, type Agent } from 'node:http'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import autocannon from 'autocannon'
import { createConnection, createPool, type Pool, type RowDataPacket } from 'mysql2/promise'
import { MARIADBD, PrivateMariaDb } from '../test/support/private-mariadb.js'

// Kept so that the whole `npm run bench` stays under 8 minutes.
export const DURATION = Number(process.env.BENCH_DURATION ?? 8)
export const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32)
export const WARMUP_SECONDS = 2
export const SCHEMA = 'bench'
const HTTP_PORT = 9300

const root = new URL('..', import.meta.url).pathname
export const projectEntry = ['dist/server.js']

export interface Target {
  name: string
  args: string[]
  env?: Record<string, string>
  /** How it gets its session cookie: from its own first answer, or handed a raw id. */
  cookie?: 'own' | 'raw-id'
  /** Started with bench/fixtures/heap-probe.mjs, so `memory()` can ask it for its heap. */
  heapProbe?: boolean
  /** Runs on the measuring CPU alone (see pinForMeasuring). */
  pinned?: boolean
}

/** SESSION_* variables pointing at the bench schema, for the project and the peers. */
export function databaseEnv (database: Database): Record<string, string> {
  return {
    SESSION_HOST: database.host,
    SESSION_PORT: String(database.port),
    SESSION_USER: database.user,
    SESSION_PASSWORD: database.password,
    SESSION_DATABASE: SCHEMA
  }
}

/** The project as production runs it, on the bench schema. */
export function projectEnv (database: Database): Record<string, string> {
  return {
    ...databaseEnv(database),
    NODE_ENV: 'production',
    SESSION_SECRET: 'bench-secret-bench-secret-bench-secret',
    SESSION_COOKIE_SECURE: 'false',
    // Everything on, as production runs it: the logger at info, metrics, CORS for one origin, the
    // proxy trusted on loopback (its address function runs on every request).
    LOG_LEVEL: 'info',
    METRICS: 'on',
    CORS_ORIGINS: 'https://app.example',
    TRUST_PROXY: '127.0.0.1',
    SESSION_CLEANUP_INTERVAL: '0',
    // Extra variables to compare settings, e.g. BENCH_PROJECT_ENV=METRICS=off,SESSION_TOUCH_AFTER=0
    ...Object.fromEntries((process.env.BENCH_PROJECT_ENV ?? '').split(',').filter(Boolean).map((pair) => pair.split('=', 2)))
  }
}

export function fire (options: autocannon.Options): Promise<autocannon.Result> {
  return autocannon({ connections: CONNECTIONS, ...options })
}

/** A session cookie for `target`, running at `base`: from its own first answer, or a row's raw id. */
export async function sessionCookie (database: Database, target: Target, base = `http://127.0.0.1:${HTTP_PORT}`): Promise<string> {
  if (target.cookie === 'raw-id') {
    const [[row]] = await database.pool.query<RowDataPacket[]>('SELECT session_id FROM sessions WHERE expires > UNIX_TIMESTAMP() LIMIT 1')
    if (!row) throw new Error('the prepared-SELECT ceiling needs a row the project wrote: run the project first')
    return `sid=${row.session_id as string}`
  }
  if (target.cookie !== 'own') return ''
  const res = await fetch(`${base}/session`)
  const setCookie = res.headers.get('set-cookie')
  if (!res.ok || !setCookie) throw new Error(`${target.name}: GET /session answered ${res.status} without a session cookie`)
  return setCookie.split(';')[0] as string
}

export interface RunningTarget {
  base: string
  /** User + system CPU time the process has used so far, in µs (from /proc, Linux only). */
  cpuMicros: () => number
  /** The process's memory after a full garbage collection (a target started with `heapProbe`). */
  memory: () => Promise<NodeJS.MemoryUsage>
  stop: () => Promise<void>
}

/** Starts `target` on port 9300 + `slot` (stacks measured side by side each have their own). */
export async function startTarget (target: Target, slot = 0): Promise<RunningTarget> {
  const port = HTTP_PORT + slot
  const probe = target.heapProbe ? ['--expose-gc', '--import', './bench/fixtures/heap-probe.mjs'] : []
  const node = [process.execPath, ...probe, ...target.args]
  // Pinned or not, given its CPUs explicitly: it would otherwise inherit the bench's.
  const cpus = target.pinned && PINNING ? SERVER_CPU : ALL_CPUS
  const [command, ...args] = PINNING ? ['taskset', '-c', cpus, ...node] : node
  const child = spawn(command as string, args, {
    cwd: root,
    env: { PATH: process.env.PATH, ...target.env, PORT: String(port), HOST: '127.0.0.1' },
    // A pipe the bench reads and drops, as a log collector reads a server's output in production.
    stdio: ['ignore', 'pipe', 'inherit', ...target.heapProbe ? ['ipc' as const] : []]
  })
  child.stdout?.resume()
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  await waitForPort(port, child)
  return {
    base: `http://127.0.0.1:${port}`,
    // taskset execs node in its own process: the pid is node's.
    cpuMicros: () => processCpuMicros(child.pid as number),
    memory: () => new Promise((resolve) => {
      child.once('message', (usage) => resolve(usage as NodeJS.MemoryUsage))
      child.send('measure')
    }),
    stop: async () => {
      child.kill('SIGTERM')
      await exited
    }
  }
}

// The measured servers get a CPU of their own, and the load generator (this process) keeps to the
// others; the database may use every CPU (it waits on the server's queries, and writes need it).
// Unpinned, identical server processes measured side by side differed by up to 1.34x in requests/s
// and CPU per request (the scheduler placed each beside autocannon, or not); pinned, by about 10%.
// BENCH_PIN=off turns it off.
// The CPUs this process may use, as the kernel lists them ("0-1", "2,3"): a container's may not
// start at 0.
const CPUS = allowedCpus()
const PINNING = CPUS.length >= 2 && process.env.BENCH_PIN !== 'off' && commandExists('taskset')
const SERVER_CPU = String(CPUS.at(-1))
const OTHER_CPUS = CPUS.slice(0, -1).join(',')
const ALL_CPUS = CPUS.join(',')

function allowedCpus (): number[] {
  const list = /^Cpus_allowed_list:\s*(\S+)/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? ''
  return list.split(',').flatMap((range) => {
    const [from, to = from] = range.split('-').map(Number) as [number, number?]
    return Number.isInteger(from) && Number.isInteger(to) ? Array.from({ length: to - from + 1 }, (_, i) => from + i) : []
  })
}

function commandExists (command: string): boolean {
  try {
    execFileSync(command, ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/**
 * While measuring side by side, this process (autocannon) keeps off the measured servers' CPU;
 * `false` gives it every CPU back (the login part's bcrypt ceiling runs here).
 */
export function pinForMeasuring (on: boolean): void {
  if (PINNING) execFileSync('taskset', ['-a', '-p', '-c', on ? OTHER_CPUS : ALL_CPUS, String(process.pid)], { stdio: 'ignore' })
}

/** How the servers were placed, for the bench's first line. */
export const placement = PINNING
  ? `measured servers on CPU ${SERVER_CPU}, the load generator on CPU ${OTHER_CPUS}, the database on any`
  : 'no CPU pinning'

// utime and stime, fields 14 and 15 of /proc/PID/stat, in clock ticks (100 per second on Linux).
function processCpuMicros (pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ')
  return (Number(fields[11]) + Number(fields[12])) * 10000
}

async function waitForPort (port: number, child: ChildProcess): Promise<void> {
  const started = Date.now()
  while (Date.now() - started < 30000) {
    if (child.exitCode !== null) throw new Error(`${child.spawnargs.join(' ')} exited with ${child.exitCode}`)
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1')
      socket.once('connect', () => { socket.destroy(); resolve(true) })
      socket.once('error', () => resolve(false))
    })
    if (open) return
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`${child.spawnargs.join(' ')} did not listen on ${port} within 30 s`)
}

export interface Database {
  host: string
  port: number
  user: string
  password: string
  label: string
  /** Root connections to the bench schema. */
  pool: Pool
  /** MariaDB's count of statements received from every client. */
  questions: () => Promise<number>
  close: () => Promise<void>
}

/**
 * A private MariaDB by default: `Questions` counts every client of the server, so only a server
 * of the bench's own gives exact queries per request.
 */
export async function openDatabase (): Promise<Database> {
  let server: PrivateMariaDb | undefined
  let url = process.env.BENCH_DATABASE_URL
  if (!url) {
    if (MARIADBD) {
      server = await PrivateMariaDb.create(undefined, ['--innodb-buffer-pool-size=1G'])
      url = server.url
    } else {
      url = 'mysql://root@127.0.0.1:3306'
    }
  }
  const parsed = new URL(url)
  const login = { host: parsed.hostname, port: Number(parsed.port || 3306), user: decodeURIComponent(parsed.username), password: decodeURIComponent(parsed.password) }
  const setup = await createConnection(login)
  await setup.query(`DROP DATABASE IF EXISTS ${SCHEMA}`)
  await setup.query(`CREATE DATABASE ${SCHEMA}`)
  await setup.end()
  const pool = createPool({ ...login, database: SCHEMA, connectionLimit: 2 })
  return {
    ...login,
    label: server ? `a private MariaDB on port ${login.port}` : `${login.host}:${login.port} (shared: queries/request counts every client)`,
    pool,
    questions: async () => {
      const [[row]] = await pool.query<RowDataPacket[]>("SHOW GLOBAL STATUS LIKE 'Questions'")
      return Number(row?.Value)
    },
    close: async () => {
      await pool.query(`DROP DATABASE IF EXISTS ${SCHEMA}`).catch(() => {})
      await pool.end()
      await server?.destroy()
    }
  }
}

export function runChecked (command: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: root, stdio: 'inherit' })
    child.once('exit', (code) => code === 0 ? resolve() : reject(new Error(`${command} ${args.join(' ')} exited with ${code}`)))
  })
}

export interface BenchUsers {
  path: string
  /** The bcrypt cost of every line: the one `npm run users -- add` wrote. */
  cost: number
  password: string
  remove: () => void
}

/**
 * An htpasswd file of users bench0 … bench{count - 1}, one password. The first is added by the
 * built `npm run users -- add`, so the cost is the one it writes; the others get the same line.
 */
export function writeBenchUsers (count: number): BenchUsers {
  const dir = mkdtempSync(join(tmpdir(), 'bench-users-'))
  const path = join(dir, 'users.htpasswd')
  const password = 'bench password 0123456789'
  execFileSync(process.execPath, ['dist/cli/users.js', 'add', 'bench0', '--file', path], { cwd: root, input: `${password}\n`, stdio: ['pipe', 'ignore', 'inherit'] })
  const hash = readFileSync(path, 'utf8').trim().split(':')[1] as string
  writeFileSync(path, Array.from({ length: count }, (_, i) => `bench${i}:${hash}\n`).join(''))
  return { path, cost: Number(hash.split('$')[2]), password, remove: () => rmSync(dir, { recursive: true, force: true }) }
}

/** One request on a socket of its own (or the agent's); resolves with its status and its time in ms. */
export function timedRequest (url: string, options: { method?: string, body?: unknown, agent?: Agent } = {}): Promise<{ status: number, ms: number }> {
  const payload = options.body === undefined ? undefined : JSON.stringify(options.body)
  const headers: Record<string, string> = payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) }
  const started = performance.now()
  return new Promise((resolve, reject) => {
    const req = request(url, { method: options.method ?? 'GET', headers, agent: options.agent ?? false }, (res) => {
      res.resume()
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - started }))
    })
    req.on('error', reject)
    req.end(payload)
  })
}
