import type { RowDataPacket } from 'mysql2/promise'
import t from 'tap'
import { Client, baseEnv, httpRequest, privateDatabase } from './helper.js'
import { MARIADBD, freePort } from './support/private-mariadb.js'
import { startServer } from './support/server-process.js'
import { sustainTraffic } from './support/traffic.js'

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** The readiness status, 0 when the server does not answer at all. */
const readiness = (base: string) => httpRequest(`${base}/health/ready`).then((res) => res.status, () => 0)

// The real server in a child process: under close-with-grace an unhandled rejection or uncaught
// exception ends it, so "still running, exits 0 on SIGTERM" proves there was none.
t.test('the database cut off and killed under load, then restarted: 503s meanwhile, no crash, the same sessions afterwards', { skip: MARIADBD ? false : 'mariadbd is not installed' }, async (t) => {
  const db = await privateDatabase(t)
  const port = await freePort()
  const server = await startServer({
    ...baseEnv,
    ...db.env,
    LOG_LEVEL: 'info',
    HOST: '127.0.0.1',
    PORT: String(port),
    // The cleanup timer fires all through the outage (express-mysql-session's own rethrows into nothing).
    SESSION_CLEANUP_INTERVAL: '100'
  })
  t.teardown(() => { server.child.kill('SIGKILL') })
  const base = `http://127.0.0.1:${port}`
  const clients = Array.from({ length: 20 }, () => new Client(base))
  const created = await Promise.all(clients.map(async (client) => (await client.request('/session')).json().createdAt))

  let running = true
  let sent = 0
  const traffic = sustainTraffic(8, () => running, (agent) => {
    sent += 1
    if (sent % 5 === 0) return httpRequest(`${base}/session`, { agent })
    return (clients[sent % clients.length] as Client).request('/session', { agent })
  })
  try {
    await sleep(1000)
    // Connections cut under the pool's feet, the server still up.
    const [connections] = await db.admin.query<RowDataPacket[]>('SELECT id FROM information_schema.processlist WHERE id <> CONNECTION_ID() AND user = ?', ['root'])
    for (const { id } of connections) await db.admin.query('KILL ?', [id]).catch(() => { /* gone already */ })
    await sleep(1000)
    await db.server.stop('SIGKILL')
    await sleep(3000)
    await db.server.start()
    const restarted = Date.now()
    while (Date.now() - restarted < 10000 && await readiness(base) !== 200) await sleep(100)
    await sleep(1000)
  } finally {
    running = false
  }
  const answers = await traffic

  const statuses = new Map<number, number>()
  for (const answer of answers) statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1)
  t.same([...statuses.keys()].filter((status) => status !== 200 && status !== 503), [], `only 200 and 503 among ${answers.length} answers (${JSON.stringify(Object.fromEntries(statuses))})`)
  t.ok((statuses.get(503) ?? 0) > 0, 'the outage was seen')
  t.ok(answers.filter((answer) => answer.status === 503).every((answer) => answer.retryAfter === '5' && !answer.setsCookie), 'every 503 has Retry-After and no cookie')
  t.equal(answers.at(-1)?.status, 200, 'answers are 200 again after the restart')
  const slowest = answers.reduce((most, answer) => Math.max(most, answer.ms), 0)
  t.ok(slowest < 2000, `the slowest answer took ${slowest} ms`)

  const again = await Promise.all(clients.map(async (client) => (await client.request('/session')).json().createdAt))
  t.same(again, created, 'every session is read back from the restarted database')

  t.equal(server.child.exitCode, null, 'the server is still running')
  server.child.kill('SIGTERM')
  const exit = await server.exited
  t.equal(exit.code, 0, 'and exits 0 on SIGTERM')
  t.match(exit.stdout, /expired-session cleanup failed/, 'the cleanup timer ran into the outage, and logged it')
  t.notMatch(exit.stdout + exit.stderr, /uncaught|unhandled/i, 'no uncaught error or unhandled rejection')
})
