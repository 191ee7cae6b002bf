// What `npm run bench` and `npm run bench:pieces` share: the loads, measuring stacks side by side,
// and the table they print.
import autocannon from 'autocannon'
import { CONNECTIONS, DURATION, WARMUP_SECONDS, fire, pinForMeasuring, sessionCookie, startTarget, type Database, type RunningTarget, type Target } from './harness.js'

export interface Measurement {
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

/** The load for a stack, given `sessions()`, which creates a new session and returns its cookie. */
export type Load = (base: string, sessions: () => Promise<string>) => Promise<autocannon.Options>

export const readLoad: Load = async (base, sessions) => ({ url: `${base}/session`, headers: { cookie: await sessions() } })

export const newSessionLoad: Load = async (base) => ({ url: `${base}/session` })

/** Each connection writes its own session, as different users do (one row for all would measure its lock). */
export const writeLoad: Load = async (base, sessions) => {
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

// Stacks are measured side by side, in slices: all started at once, then loaded in turn for a
// second each, DURATION times round (each round starting one stack later), and each figure is the
// median of a stack's slices. The two cores are shared by MariaDB, the server and autocannon, and
// their pace drifts: back-to-back 10-s runs of one stack moved by up to 1.8x in CPU per request;
// stacks loaded in alternate seconds see the same drift, and the median drops the odd slow second.
const SLICE_SECONDS = 1

interface Slices {
  rps: number[]
  cpuPerRequest: number[]
  p50: number[]
  p99: number[]
  requests: number
  queries: number
  errors: number
}

export interface SideBySideOptions {
  connections?: number
  /**
   * Processes per stack, their slices pooled: one process can be some percent faster or slower
   * than another of the same code for its whole life (where the allocator and the JIT placed
   * things), so a ratio that is a target is taken over two of each.
   */
  replicas?: number
}

/** Measures `targets` side by side (see SLICE_SECONDS), each on the measuring CPU: one row each. */
export async function measureSideBySide (database: Database, targets: Target[], scenario: string, load: Load, options: SideBySideOptions = {}): Promise<Measurement[]> {
  const { connections = CONNECTIONS, replicas = 1 } = options
  const servers: RunningTarget[] = []
  // servers[k] runs targets[owner[k]].
  const owner: number[] = []
  pinForMeasuring(true)
  try {
    for (let copy = 0; copy < replicas; copy++) {
      for (const [i, target] of targets.entries()) {
        servers.push(await startTarget({ ...target, pinned: true }, servers.length))
        owner.push(i)
      }
    }
    const loads: autocannon.Options[] = []
    for (const [k, server] of servers.entries()) {
      const options = { connections, ...await load(server.base, () => sessionCookie(database, targets[owner[k] as number] as Target, server.base)) }
      await fire({ ...options, duration: WARMUP_SECONDS })
      loads.push(options)
    }
    const slices: Slices[] = targets.map(() => ({ rps: [], cpuPerRequest: [], p50: [], p99: [], requests: 0, queries: 0, errors: 0 }))
    const rounds = Math.max(1, Math.round(DURATION / SLICE_SECONDS))
    for (let round = 0; round < rounds; round++) {
      for (let step = 0; step < servers.length; step++) {
        const i = (round + step) % servers.length
        const server = servers[i] as RunningTarget
        const tally = slices[owner[i] as number] as Slices
        const before = await database.questions()
        const cpuBefore = server.cpuMicros()
        const result = await fire({ ...loads[i], duration: SLICE_SECONDS })
        const cpu = server.cpuMicros() - cpuBefore
        // The second SHOW STATUS counts itself.
        tally.queries += await database.questions() - before - 1
        tally.requests += result.requests.total
        tally.errors += result.errors + result.timeouts + result.non2xx
        tally.rps.push(result.requests.total / result.duration)
        tally.cpuPerRequest.push(cpu / Math.max(1, result.requests.total))
        tally.p50.push(result.latency.p50)
        tally.p99.push(result.latency.p99)
      }
    }
    return slices.map((tally, i) => ({
      target: (targets[i] as Target).name,
      scenario,
      rps: median(tally.rps),
      p50: median(tally.p50),
      p99: median(tally.p99),
      queriesPerRequest: tally.queries / Math.max(1, tally.requests),
      cpuPerRequest: median(tally.cpuPerRequest),
      errors: tally.errors
    }))
  } finally {
    for (const server of servers) await server.stop()
    pinForMeasuring(false)
  }
}

function median (values: number[]): number {
  return percentile(values, 50)
}

/**
 * The table of a part: "vs first" is each row's req/s over the first row's (the seed, or the
 * floor); with `delta`, each row's server CPU per request minus the row above's.
 */
export function printTable (title: string, rows: Measurement[], options: { delta?: boolean } = {}): void {
  const first = rows[0]?.rps ?? 1
  console.log(`\n${title}`)
  console.log(`| stack | req/s | p50 ms | p99 ms | queries/req | server CPU µs/req |${options.delta ? ' added µs/req |' : ''} vs first | non-2xx+errors |`)
  console.log(`| --- | ---: | ---: | ---: | ---: | ---: |${options.delta ? ' ---: |' : ''} ---: | ---: |`)
  for (const [i, row] of rows.entries()) {
    const added = options.delta ? ` ${i === 0 ? '' : (row.cpuPerRequest - (rows[i - 1] as Measurement).cpuPerRequest).toFixed(0)} |` : ''
    console.log(`| ${row.target} | ${Math.round(row.rps)} | ${row.p50} | ${row.p99} | ${row.queriesPerRequest.toFixed(2)} | ${Math.round(row.cpuPerRequest)} |${added} ${(row.rps / first).toFixed(2)}x | ${row.errors} |`)
  }
}

/** The nearest-rank percentile. */
export function percentile (values: number[], p: number): number {
  const sorted = [...values].sort((x, y) => x - y)
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN
}
