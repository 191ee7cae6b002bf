// `npm run soak -- --minutes N`: N minutes (default 1) of mixed traffic against the production
// server (dist/server.js, built when needed) on a private MariaDB that is SIGKILLed and restarted
// once in the middle. Loopback only, bounded, not part of `npm test`. Prints the requests, the 5xx
// outside the outage window, latency and the server's RSS at start and end; exits 1 when a 5xx
// came outside that window or the server did not survive.
import { execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { createConnection } from 'mysql2/promise'
import { Client, httpRequest } from '../test/helper.js'
import { PrivateMariaDb, freePort } from '../test/support/private-mariadb.js'
import { sustainTraffic, type Answer } from '../test/support/traffic.js'

const { values } = parseArgs({ options: { minutes: { type: 'string', default: '1' }, workers: { type: 'string', default: '8' } } })
const minutes = Number(values.minutes)
const workers = Number(values.workers)
if (!(minutes > 0 && minutes <= 60) || !(workers >= 1 && workers <= 64)) {
  process.stderr.write('usage: npm run soak -- [--minutes 0.5-60] [--workers 1-64]\n')
  process.exit(2)
}
const durationMs = minutes * 60000
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const mib = (kib: number) => `${(kib / 1024).toFixed(1)} MiB`

/** Resident memory of a process in KiB, from /proc (Linux). */
function rssKib (pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:'))
  return Number(line?.match(/\d+/)?.[0] ?? NaN)
}

const root = new URL('..', import.meta.url).pathname
execFileSync(process.execPath, [join(root, 'scripts/build-if-needed.mjs')], { cwd: root, stdio: 'inherit' })

const database = await PrivateMariaDb.create()
const workDir = mkdtempSync(join(tmpdir(), 'soak-')) // the server's cwd: no .env of the developer's
let exitCode = 1
try {
  const setup = await createConnection({ host: '127.0.0.1', port: database.port, user: 'root' })
  await setup.query('CREATE DATABASE sessions')
  await setup.end()

  const port = await freePort()
  const server = spawn(process.execPath, [join(root, 'dist/server.js')], {
    cwd: workDir,
    env: {
      PATH: process.env.PATH,
      NODE_ENV: 'production',
      LOG_LEVEL: 'warn',
      HOST: '127.0.0.1',
      PORT: String(port),
      SESSION_SECRET: 'soak-secret-soak-secret-soak-secret-0123456789',
      SESSION_COOKIE_SECURE: 'false',
      SESSION_HOST: '127.0.0.1',
      SESSION_PORT: String(database.port),
      SESSION_USER: 'root',
      SESSION_DATABASE: 'sessions',
      // Sessions nobody returns to expire within the run, so the cleanup has work under load.
      SESSION_MAX_AGE: '60000',
      SESSION_CLEANUP_INTERVAL: '5000'
    }
  })
  let serverLog = ''
  server.stdout.on('data', (chunk: Buffer) => { serverLog += chunk.toString() })
  server.stderr.on('data', (chunk: Buffer) => { serverLog += chunk.toString() })
  const exited = new Promise<number | null>((resolve) => server.once('exit', resolve))
  const base = `http://127.0.0.1:${port}`
  while ((await httpRequest(`${base}/health/ready`).then((res) => res.status, () => 0)) !== 200) await sleep(100)

  const clients = Array.from({ length: 200 }, () => new Client(base))
  for (const client of clients) await client.request('/session')
  const rssStart = rssKib(server.pid as number)
  let rssMax = rssStart
  const sampler = setInterval(() => { rssMax = Math.max(rssMax, rssKib(server.pid as number)) }, 1000)

  const started = Date.now()
  let sent = 0
  const traffic = sustainTraffic(workers, () => Date.now() - started < durationMs, (agent) => {
    sent += 1
    const kind = sent % 10
    if (kind < 6) return (clients[sent % clients.length] as Client).request('/session', { agent })
    if (kind < 8) return httpRequest(`${base}/session`, { agent })
    if (kind < 9) return httpRequest(`${base}/session`, { agent, headers: { cookie: `sid=s%3A${sent}.forged` } })
    return httpRequest(`${base}/health/ready`, { agent })
  })

  await sleep(durationMs / 2)
  const killedAt = Date.now() - started
  await database.stop('SIGKILL')
  await sleep(5000)
  await database.start()
  const restartedAt = Date.now() - started
  const answers: Answer[] = await traffic
  clearInterval(sampler)
  const rssEnd = rssKib(server.pid as number)
  const alive = server.exitCode === null
  server.kill('SIGTERM')
  const exitStatus = await exited

  // The outage window: requests still running at the kill, up to the first 200 after the restart.
  const recoveredAt = answers.filter((a) => a.at > restartedAt && a.status === 200).reduce((first, a) => Math.min(first, a.at + a.ms), Infinity)
  const outside5xx = answers.filter((a) => (a.status >= 500 || a.status === 0) && (a.at + a.ms < killedAt || a.at > recoveredAt))
  const statuses = new Map<number, number>()
  for (const a of answers) statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1)
  const latencies = answers.map((a) => a.ms).sort((x, y) => x - y)
  const percentile = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? 0
  const uncaught = /uncaught|unhandled/i.test(serverLog)
  const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`

  console.log(`soak: ${minutes} min, ${workers} workers, 200 returning clients + cookieless, forged-cookie and readiness requests`)
  console.log(`database SIGKILLed at ${seconds(killedAt)}, restarted at ${seconds(restartedAt)}, first 200 after it at ${seconds(recoveredAt)}`)
  console.log(`requests: ${answers.length} (${Math.round(answers.length / (durationMs / 1000))}/s); by status: ${JSON.stringify(Object.fromEntries([...statuses].sort()))}`)
  console.log(`5xx or no answer outside the outage window: ${outside5xx.length}`)
  console.log(`latency: p50 ${percentile(0.5)} ms, p99 ${percentile(0.99)} ms, max ${latencies.at(-1) ?? 0} ms`)
  console.log(`server RSS: start ${mib(rssStart)}, end ${mib(rssEnd)}, max ${mib(rssMax)}`)
  console.log(`server: ${alive ? 'alive at the end' : 'DIED during the run'}, exit ${exitStatus} on SIGTERM, ${uncaught ? 'an UNCAUGHT error was logged' : 'no uncaught error logged'}`)
  exitCode = outside5xx.length === 0 && alive && exitStatus === 0 && !uncaught ? 0 : 1
} finally {
  await database.destroy()
  rmSync(workDir, { recursive: true, force: true })
}
process.exit(exitCode)
