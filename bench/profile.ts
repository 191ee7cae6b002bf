// `npm run bench:profile`: runs the project under `node --cpu-prof` through the steady-state read
// load of `npm run bench`, then prints where the CPU time went, by package and by function.
// BENCH_PROFILE_STORE=memory profiles it without the database; BENCH_PROFILE_FIXTURE=naive-port (or
// another file of bench/fixtures) profiles that peer instead, for comparison.
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DURATION, WARMUP_SECONDS, fire, openDatabase, projectEntry, projectEnv, runChecked, sessionCookie, startTarget } from './harness.js'

interface ProfileNode {
  id: number
  callFrame: { functionName: string, url: string, lineNumber: number }
  hitCount?: number
}

const database = await openDatabase()
try {
  await runChecked('node', ['scripts/build-if-needed.mjs'])
  const dir = mkdtempSync(join(tmpdir(), 'bench-profile-'))
  const memory = process.env.BENCH_PROFILE_STORE === 'memory'
  const env = memory ? { ...projectEnv(database), NODE_ENV: 'development', SESSION_HOST: '' } : projectEnv(database)
  const peer = process.env.BENCH_PROFILE_FIXTURE
  const entry = peer ? [`bench/fixtures/${peer}.mjs`] : projectEntry
  const target = { name: peer ?? 'this project', args: ['--cpu-prof', '--cpu-prof-dir', dir, ...entry], env, cookie: 'own' as const }
  const server = await startTarget(target)
  let requests = 0
  try {
    const cookie = await sessionCookie(database, target)
    // BENCH_PROFILE_LOAD=new: requests without a cookie, each creating a session.
    const headers = process.env.BENCH_PROFILE_LOAD === 'new' ? {} : { cookie }
    requests = (await fire({ url: `${server.base}/session`, headers, duration: WARMUP_SECONDS + DURATION })).requests.total
  } finally {
    await server.stop()
  }
  const file = readdirSync(dir).find((name) => name.endsWith('.cpuprofile'))
  if (!file) throw new Error(`no profile was written to ${dir}`)
  const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { nodes: ProfileNode[], startTime: number, endTime: number }
  report(profile, requests, join(dir, file))
} finally {
  await database.close()
}

function report ({ nodes, startTime, endTime }: { nodes: ProfileNode[], startTime: number, endTime: number }, requests: number, path: string): void {
  const total = nodes.reduce((sum, node) => sum + (node.hitCount ?? 0), 0)
  const idle = nodes.filter((node) => node.callFrame.functionName === '(idle)').reduce((sum, node) => sum + (node.hitCount ?? 0), 0)
  // Samples are evenly spaced over the profile (start-up included), so busy samples over all samples
  // is the share of the wall time the process was on a CPU.
  const busyMicros = (endTime - startTime) * (total - idle) / total
  const perRequest = busyMicros / requests
  const byPackage = new Map<string, number>()
  const byFunction = new Map<string, number>()
  for (const node of nodes) {
    const hits = node.hitCount ?? 0
    if (hits === 0) continue
    const { functionName, url, lineNumber } = node.callFrame
    add(byPackage, packageOf(url, functionName), hits)
    add(byFunction, `${functionName || '(anonymous)'} ${shortUrl(url)}:${lineNumber + 1}`, hits)
  }
  console.log(`\nCPU profile under GET /session load (${total} samples; ${path})`)
  console.log(`${requests} requests; ${Math.round(perRequest)} µs of CPU per request (start-up included)`)
  printTop('Self time by package', byPackage, total, perRequest / (1 - idle / total), 15)
  printTop('Self time by function', byFunction, total, perRequest / (1 - idle / total), 25)
}

function add (map: Map<string, number>, key: string, hits: number): void {
  map.set(key, (map.get(key) ?? 0) + hits)
}

function packageOf (url: string, functionName: string): string {
  if (!url) return functionName.startsWith('(') ? functionName : '(native)'
  const match = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (match) return match[1] as string
  if (url.startsWith('node:')) return 'node core'
  if (url.includes('/dist/')) return 'this project'
  return shortUrl(url)
}

function shortUrl (url: string): string {
  return url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/dist\//, 'dist/')
}

/** Each line: share of all samples, and what that share is in µs per request. */
function printTop (title: string, map: Map<string, number>, total: number, microsPerRequest: number, count: number): void {
  console.log(`\n${title}`)
  for (const [key, hits] of [...map].sort((a, b) => b[1] - a[1]).slice(0, count)) {
    console.log(`${(100 * hits / total).toFixed(1).padStart(5)}% ${(microsPerRequest * hits / total).toFixed(1).padStart(6)} µs  ${key}`)
  }
}
