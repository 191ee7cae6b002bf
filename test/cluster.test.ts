import { execFileSync, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { createConnection, type RowDataPacket } from 'mysql2/promise'
import t from 'tap'
import type { SessionData } from 'express-session'
import { pino } from 'pino'
import { startGaleraProxy } from '../scripts/cluster/haproxy.js'
import { startClusterStack, DATABASE } from '../scripts/cluster/stack.js'
import { loadConfig } from '../src/config/config.js'
import { createMysqlStore } from '../src/session/mysql-store.js'
import { Client, baseEnv, build, listen, sameBrowserOn, type HttpResponse } from './helper.js'
import { loginAs, writeUsersFile } from './support/accounts.js'
import { scrape } from './support/metrics.js'
import { freePort } from './support/private-mariadb.js'
import { sessionIdOf } from './support/signed-cookie.js'
import { expressMysqlSessionTable } from './support/legacy-tables.js'

// Three Galera nodes, three server processes (instance i writes through node i first), HAProxy in
// front, as `npm run cluster` starts them. First tight loops across instances (causal reads), then
// mixed traffic through HAProxy while a node and an instance are killed with -9 and brought back.

// The whole file takes 80-110 s on two cores (three Galera state transfers, two kill -9 recoveries,
// then `npm run cluster` from scratch): tap's 120-s limit per file left too little room.
t.setTimeout(300_000)

const CLEANUP_INTERVAL_MS = 1000
const WORKERS = 10
const users = [...Array.from({ length: WORKERS + 1 }, (_, i) => `user${i}`), 'witness']

const stack = await startClusterStack({
  users,
  keepOutput: true,
  // debug: each instance logs the maintenance lease it claims, so the test sees every cleanup.
  env: { SESSION_CLEANUP_INTERVAL: String(CLEANUP_INTERVAL_MS), LOG_LEVEL: 'debug' },
  log: (line) => t.comment(line)
})
t.teardown(() => stack.stop())
const { password } = stack.accounts
const started = Date.now()

t.test('what one instance answers, the next request through another instance sees: logins, states, revocations, logouts', async (t) => {
  const [a, b, c] = stack.instances.map((instance) => instance.url) as [string, string, string]
  const failures: string[] = []
  // Several loops at once, so that the nodes are busy applying each other's writes.
  const loop = async (user: string) => {
    for (let round = 0; round < 15; round++) {
      const laptop = new Client(a)
      if ((await loginAs(laptop, user, password)).status !== 200) failures.push(`${user} round ${round}: login on A failed`)
      if ((await sameBrowserOn(b, laptop).request('/session')).json().authenticated !== true) failures.push(`${user} round ${round}: B did not see the login on A`)
      await sameBrowserOn(b, laptop).request('/session/state', { method: 'PUT', body: { round } })
      if ((await sameBrowserOn(c, laptop).request('/session')).json().state?.round !== round) failures.push(`${user} round ${round}: C did not see the state written on B`)
      const phone = new Client(c)
      await loginAs(phone, user, password)
      const revoked = await phone.request('/session/all', { method: 'DELETE' })
      if (revoked.json().revoked !== 1) failures.push(`${user} round ${round}: the revocation on C ended ${revoked.body}`)
      if ((await sameBrowserOn(a, laptop).request('/session')).json().authenticated !== false) failures.push(`${user} round ${round}: A still saw the session revoked on C`)
      const old = phone.cookie
      if ((await sameBrowserOn(b, phone).request('/session/logout', { method: 'POST' })).status !== 204) failures.push(`${user} round ${round}: logout on B failed`)
      const stale = new Client(a)
      stale.cookie = old
      if ((await stale.request('/session')).json().authenticated !== false) failures.push(`${user} round ${round}: A still saw the session logged out on B`)
    }
  }
  await Promise.all(users.slice(0, WORKERS).map(loop))
  t.same(failures, [], `${WORKERS} users, 15 rounds each, each step read back at once through another instance and another node`)
})

/** Waits (up to 10 s) until an instance has logged a line, after the `since`-th line, that has every part. */
async function logged (instance: { output: string[] }, since: number, ...parts: string[]): Promise<boolean> {
  for (let tries = 0; tries < 100; tries++) {
    if (instance.output.slice(since).some((line) => parts.every((part) => line.includes(part)))) return true
    await sleep(100)
  }
  return false
}

const rootOn = (node: number, database?: string) => createConnection({ uri: stack.cluster.rootUrl(node), database })
const statusOf = async (connection: Awaited<ReturnType<typeof rootOn>>, name: string) =>
  String((await connection.query<RowDataPacket[]>('SHOW GLOBAL STATUS LIKE ?', [name]))[0][0]?.Value)

t.test('a node that is not Synced, or not in the primary component, gets no queries; it gets them again once back', async (t) => {
  const instance1 = stack.instances[0] as typeof stack.instances[0]
  const port1 = stack.cluster.nodes[0]?.sqlPort as number
  const admin = await rootOn(0)
  t.teardown(() => admin.end())
  const client = new Client(instance1.url)
  t.equal((await loginAs(client, users[WORKERS] as string, password)).status, 200)
  const selectsOnNode1 = async () => Number(await statusOf(admin, 'Com_select'))
  const readThrough = async () => {
    const answers = await Promise.all(Array.from({ length: 30 }, () => sameBrowserOn(instance1.url, client).request('/session')))
    return answers.map((res) => `${res.status} ${res.json().authenticated}`)
  }
  const everyRead = Array.from({ length: 30 }, () => '200 true')

  for (const [how, away, back, problem] of [
    ['Donor/Desynced (wsrep_desync)', 'SET GLOBAL wsrep_desync = ON', 'SET GLOBAL wsrep_desync = OFF', 'not Synced'],
    ['cut off from the others (gmcast.isolate)', "SET GLOBAL wsrep_provider_options = 'gmcast.isolate=1'", "SET GLOBAL wsrep_provider_options = 'gmcast.isolate=0'", ''] // non-Primary, or not Synced first: either leaves it
  ] as const) {
    let since = instance1.output.length
    await admin.query(away)
    t.ok(await logged(instance1, since, 'database node left', `:${port1}`, problem), `instance 1 leaves node 1 when it is ${how}`, { log: instance1.output.slice(since).filter((line) => line.includes('database node')) })
    t.equal((await scrape(instance1.url)).value('session_store_node_usable', { node: `127.0.0.1:${port1}` }), 0, 'its metrics show node 1 unused')
    const before = await selectsOnNode1()
    t.same(await readThrough(), everyRead, 'its reads are answered meanwhile (by node 2)')
    t.equal(await selectsOnNode1() - before, 0, 'and none of them ran on node 1')
    since = instance1.output.length
    await admin.query(back)
    t.ok(await logged(instance1, since, 'database node is usable again', `:${port1}`), 'instance 1 goes back to node 1 once it is Synced in the primary component')
    t.equal((await scrape(instance1.url)).value('session_store_node_usable', { node: `127.0.0.1:${port1}` }), 1, 'and used again')
    const again = await selectsOnNode1()
    t.same(await readThrough(), everyRead)
    t.ok(await selectsOnNode1() - again >= 30, 'and reads there again')
  }
})

t.test('the alternative: HAProxy in TCP mode in front of the nodes sends nothing to a node that is not Synced', async (t) => {
  const proxy = await startGaleraProxy(stack.cluster)
  t.teardown(() => proxy.stop())
  const reached = async () => {
    const ports = new Set<number>()
    for (let i = 0; i < 12; i++) {
      // HAProxy cuts the connections of a node it marks down (on-marked-down shutdown-sessions):
      // a client sees a lost connection and connects again, as the store's pool does.
      try {
        const connection = await createConnection({ host: '127.0.0.1', port: proxy.port, user: 'root' })
        ports.add(Number((await connection.query<RowDataPacket[]>('SELECT @@port AS port'))[0][0]?.port))
        await connection.end()
      } catch {}
    }
    return ports
  }
  const [port1, port2, port3] = stack.cluster.nodes.map((node) => node.sqlPort)
  t.same([...await reached()].sort(), [port1, port2, port3].sort(), 'round robin over the three nodes')
  const admin = await rootOn(2)
  t.teardown(async () => {
    await admin.query('SET GLOBAL wsrep_desync = OFF')
    await admin.end()
  })
  await admin.query('SET GLOBAL wsrep_desync = ON')
  let ports = await reached()
  for (let tries = 0; tries < 30 && ports.has(port3 as number); tries++) ports = await reached()
  t.notOk(ports.has(port3 as number), `node 3 Donor/Desynced: new connections reach ${[...ports].join(', ')} only`)

  // The app with SESSION_HOST = the proxy: one host, causal reads detected per connection.
  const app = await build(t, {
    ...baseEnv,
    SESSION_HOST: `127.0.0.1:${proxy.port}`,
    SESSION_USER: 'root',
    SESSION_DATABASE: DATABASE,
    AUTH_USERS_FILE: writeUsersFile(t, { ann: 'correct horse' })
  })
  const client = new Client(await listen(app))
  t.equal((await loginAs(client, 'ann', 'correct horse')).status, 200)
  for (let i = 0; i < 10; i++) t.equal((await client.request('/session')).json().authenticated, true, `read ${i} through the proxy, on whichever node`)
  t.equal((await client.request('/session/logout', { method: 'POST' })).status, 204)
})

t.test('two nodes writing one session at once: a certification conflict is retried, never a 500', async (t) => {
  const [a, b] = stack.instances as [typeof stack.instances[0], typeof stack.instances[0]]
  const client = new Client(a.url)
  t.equal((await loginAs(client, users[WORKERS] as string, password)).status, 200)
  const since = [a.output.length, b.output.length]
  const statuses: number[] = []
  for (let round = 0; round < 40; round++) {
    const answers = await Promise.all([a, b].map((instance, side) => sameBrowserOn(instance.url, client).request('/session/state', { method: 'PUT', body: { round, side } })))
    statuses.push(...answers.map((res) => res.status))
  }
  const retries = [a, b].reduce((sum, instance, i) => sum + instance.output.slice(since[i]).filter((line) => line.includes('retrying a database operation once')).length, 0)
  t.comment(`${retries} statements retried after a conflict; answers ${JSON.stringify(Object.fromEntries(statuses.map((status) => [status, statuses.filter((other) => other === status).length])))}`)
  t.same(statuses.filter((status) => status !== 200 && status !== 503), [], 'every answer 200, or 503 with Retry-After if the retry conflicted too')
  t.ok(statuses.filter((status) => status === 200).length >= statuses.length * 0.9, 'nearly all 200')
  const state = (await sameBrowserOn(a.url, client).request('/session')).json().state
  t.equal(state?.round, 39, 'the last round\'s write is the state, whichever side won')
})

t.test('table creation and upgrade on the running cluster, from three instances on three nodes at once, while sessions are written', async (t) => {
  const silent = pino({ level: 'silent' })
  const admin = await rootOn(0)
  t.teardown(async () => {
    await admin.query('DROP DATABASE IF EXISTS upgrade_test')
    await admin.query('DROP DATABASE IF EXISTS create_test')
    await admin.end()
  })
  await admin.query('CREATE DATABASE upgrade_test')
  await admin.query('CREATE DATABASE create_test')
  // express-mysql-session's table, with rows: the upgrade adds the indexes and the user column.
  await admin.query(expressMysqlSessionTable('upgrade_test.sessions'))
  const expires = Math.floor(Date.now() / 1000) + 3600
  await admin.query('INSERT INTO upgrade_test.sessions (session_id, expires, data) VALUES ?',
    [Array.from({ length: 3000 }, (_, i) => [`legacy${i}`, expires, JSON.stringify({ cookie: {}, user: { name: `u${i % 50}` } })])])

  for (const database of ['upgrade_test', 'create_test']) {
    const stores = stack.cluster.nodes.map((node) => createMysqlStore(loadConfig({
      SESSION_HOST: `127.0.0.1:${node.sqlPort}`, SESSION_USER: 'root', SESSION_DATABASE: database, SESSION_SECRET: 'x'
    }).config, { deadlineMs: 5000, log: silent }))
    t.teardown(async () => {
      for (const { store, pool } of stores) {
        await store.close()
        await pool.end()
      }
    })
    // Sessions written through node 2 the whole time (a store's own saves, as requests make them).
    const writer = stores[1]?.store as (typeof stores)[0]['store']
    const writing = { on: true }
    const writeErrors: unknown[] = []
    const writes = (async () => {
      await writer.prepare().catch(() => {})
      for (let i = 0; writing.on; i++) {
        const data = { cookie: { originalMaxAge: 60000, expires: new Date(Date.now() + 60000).toISOString() }, n: i } as unknown as SessionData
        await new Promise<void>((resolve) => writer.set(`during${i}`, data, (error) => { if (error) writeErrors.push(error); resolve() }))
      }
    })()
    const upgrades = await Promise.allSettled(stores.map(({ store }) => store.prepare()))
    writing.on = false
    await writes
    t.same(upgrades.map((result) => result.status), ['fulfilled', 'fulfilled', 'fulfilled'], `${database}: all three instances' upgrades succeed`)
    t.same(writeErrors, [], `${database}: no save failed meanwhile`)
    for (const [index] of stack.cluster.nodes.entries()) {
      const connection = await rootOn(index, database)
      const [indexes] = await connection.query<RowDataPacket[]>('SHOW INDEX FROM sessions')
      const [leases] = await connection.query<RowDataPacket[]>("SHOW TABLES LIKE 'session_leases'")
      t.same([...new Set(indexes.map((row) => String(row.Key_name)))].sort(), ['PRIMARY', 'idx_expires', 'idx_sso_key', 'idx_user_key'], `${database} on node ${index + 1}: the indexes, once each`)
      t.equal(leases.length, 1, `${database} on node ${index + 1}: the lease table`)
      t.equal(await statusOf(connection, 'wsrep_local_state_comment'), 'Synced', `node ${index + 1} is Synced`)
      await connection.query('INSERT INTO sessions (session_id, expires, data) VALUES (?, ?, ?)', [`after-on-${index}`, expires, '{}'])
      await connection.end()
    }
  }
})

interface Tally {
  statuses: Map<number, number>
  /** When each 503 came (ms since the run began); any other 5xx is a failure. */
  unavailable: number[]
  /** What each 503 answered, for the log. */
  unavailableWhat: string[]
  failures: string[]
  requests: number
  /** Sessions logged in while node 2 was away: their ids, to find on node 2 when it is back. */
  writtenWhileAway: Set<string>
}

t.test('mixed traffic through HAProxy while a Galera node and an app instance are killed with -9 and come back', async (t) => {
  const tally: Tally = { statuses: new Map(), unavailable: [], unavailableWhat: [], failures: [], requests: 0, writtenWhileAway: new Set() }
  const runStarted = Date.now()
  const now = () => Date.now() - runStarted
  const events: Array<{ at: number, what: string }> = []
  const witnesses: Client[] = []
  let nodeAway = false
  const run = { stopping: false }

  /** Counts the answer; true when it is a usable one (not a 503). */
  const count = (res: HttpResponse, what: string): boolean => {
    tally.requests++
    tally.statuses.set(res.status, (tally.statuses.get(res.status) ?? 0) + 1)
    if (res.status === 503) {
      if (res.headers['retry-after'] === undefined) tally.failures.push(`${what}: 503 without Retry-After`)
      tally.unavailable.push(now())
      tally.unavailableWhat.push(`${what} at ${now()} ms`)
      return false
    }
    if (res.status >= 500 || (res.status >= 300 && res.status !== 401)) tally.failures.push(`${what}: ${res.status} ${res.body.slice(0, 200)}`)
    return res.status < 300
  }

  const worker = async (user: string) => {
    const laptop = new Client(stack.url)
    const phone = new Client(stack.url)
    let loggedIn = false
    let state: number | undefined // the state last written; undefined after a write whose outcome is unknown
    // A logout or revocation answered 503 may still have ended the session (its statement ran on
    // after the request's deadline): the next read tells which.
    let ended: 'maybe' | 'no' = 'no'
    let counter = 0
    while (!run.stopping) {
      await sleep(10)
      if (!loggedIn) {
        if (count(await loginAs(laptop, user, password), `${user} login`)) {
          loggedIn = true
          state = undefined
          if (nodeAway) tally.writtenWhileAway.add(sessionIdOf(laptop.cookie) as string)
        }
        continue
      }
      const dice = Math.random()
      if (dice < 0.6) {
        const res = await laptop.request('/session')
        if (!count(res, `${user} read`)) continue
        const body = res.json()
        if (ended === 'maybe' && body.authenticated !== true) {
          loggedIn = false
          laptop.cookie = undefined
          continue
        }
        ended = 'no'
        if (body.authenticated !== true) tally.failures.push(`${user} was logged out at ${now()} ms`)
        else if (state !== undefined && body.state?.n !== state) tally.failures.push(`${user} read state ${JSON.stringify(body.state)}, wrote ${state}`)
      } else if (dice < 0.85) {
        const n = ++counter
        state = count(await laptop.request('/session/state', { method: 'PUT', body: { n } }), `${user} write`) ? n : undefined
      } else if (dice < 0.93) {
        const old = laptop.cookie
        if (!count(await laptop.request('/session/logout', { method: 'POST' }), `${user} logout`)) {
          ended = 'maybe'
          continue
        }
        loggedIn = false
        const stale = new Client(stack.url)
        stale.cookie = old
        const after = await stale.request('/session')
        if (count(after, `${user} read after logout`) && after.json().authenticated !== false) tally.failures.push(`${user}'s logout did not stick at ${now()} ms`)
      } else {
        if (!count(await loginAs(phone, user, password), `${user} phone login`)) continue
        const revoked = await phone.request('/session/all', { method: 'DELETE' })
        if (!count(revoked, `${user} revoke`)) {
          ended = 'maybe'
          continue
        }
        loggedIn = false
        const after = await laptop.request('/session')
        if (count(after, `${user} read after revocation`) && after.json().authenticated !== false) tally.failures.push(`${user}'s revocation did not stick at ${now()} ms`)
        laptop.cookie = undefined
      }
    }
  }

  const event = async (what: string, action: () => Promise<void>) => {
    events.push({ at: now(), what })
    await action()
    events.push({ at: now(), what: `${what}: done` })
  }
  const node2 = stack.cluster.nodes[1] as typeof stack.cluster.nodes[0]
  const instance3 = stack.instances[2] as typeof stack.instances[0]
  const scenario = async () => {
    await sleep(4000)
    nodeAway = true
    await event('kill -9 Galera node 2', () => node2.kill())
    await sleep(2000)
    // Sessions logged in while node 2 is away, kept to the end.
    for (let i = 0; i < 5; i++) {
      const witness = new Client(stack.url)
      if (count(await loginAs(witness, 'witness', password), 'witness login')) witnesses.push(witness)
    }
    await sleep(3000)
    await event('kill -9 app instance 3', () => instance3.kill())
    await sleep(4000)
    // A write on the cluster meanwhile that node 2 must get by IST.
    await event('node 2 restarts and rejoins', () => node2.start())
    nodeAway = false
    await event('app instance 3 restarts', () => instance3.start())
    await sleep(5000)
    run.stopping = true
  }
  await Promise.all([scenario(), ...users.slice(0, WORKERS).map(worker)])

  for (const { at, what } of events) t.comment(`${(at / 1000).toFixed(1)} s: ${what}`)
  t.comment(`${tally.requests} requests: ${JSON.stringify(Object.fromEntries(tally.statuses))}`)
  if (tally.unavailableWhat.length > 0) t.comment(`503s: ${tally.unavailableWhat.join('; ')}`)
  t.same(tally.failures, [], 'every answer 2xx (or 401 by design) or 503 with Retry-After; nobody logged out; every logout and revocation stuck')
  t.ok(tally.requests > 500, `${tally.requests} requests in the run`)
  // Every 503 near an event: a window opens at each event and lasts at most WINDOW_MS.
  const WINDOW_MS = 8000
  const outside = tally.unavailable.filter((at) => !events.some((event) => at >= event.at && at <= event.at + WINDOW_MS))
  t.same(outside, [], '503s only while a node or an instance was failing over')
  const windows = events.filter(({ what }) => !what.endsWith('done')).map(({ at, what }) => {
    const inWindow = tally.unavailable.filter((time) => time >= at && time <= at + WINDOW_MS)
    return `${what}: ${inWindow.length} 503s${inWindow.length > 0 ? ` over ${Math.max(...inWindow) - at} ms after it` : ''}`
  })
  for (const line of windows) t.comment(line)

  // The rejoined node has the sessions logged in while it was away, and serves them.
  t.ok(tally.writtenWhileAway.size > 0, `${tally.writtenWhileAway.size} logins of the traffic while node 2 was away`)
  t.equal(witnesses.length, 5, 'five more logins while node 2 was away, kept to the end')
  const ids = [...tally.writtenWhileAway, ...witnesses.map((witness) => sessionIdOf(witness.cookie) as string)]
  const sessionsOn = async (node: number) => {
    const connection = await createConnection({ uri: stack.cluster.rootUrl(node), database: DATABASE })
    const [rows] = await connection.query<RowDataPacket[]>('SELECT session_id FROM sessions WHERE session_id IN (?)', [ids])
    await connection.end()
    return rows.map((row) => String(row.session_id)).sort()
  }
  const onNode2 = await sessionsOn(1)
  t.same(onNode2, await sessionsOn(0), `node 2 holds the ${onNode2.length} of them still live, as node 1 does`)
  // Instance 2 lists node 2 first: it goes back to it once its check finds it Synced.
  const instance2 = stack.instances[1] as typeof stack.instances[0]
  const back = instance2.output.some((line) => line.includes('database node is usable again') && line.includes(`:${node2.sqlPort}`))
  t.ok(back, 'instance 2 logged that node 2 is usable again')
  const answers = await Promise.all(witnesses.map((witness) => sameBrowserOn(instance2.url, witness).request('/session')))
  t.same(answers.map((res) => res.json().authenticated), witnesses.map(() => true), 'and serves, from node 2, the sessions written while node 2 was away')
})

t.test('the cleanup ran once per interval across the instances', async (t) => {
  const claims = stack.instances.flatMap((instance) => instance.output.flatMap((line) => {
    if (!line.includes('maintenance lease claimed') || !line.includes('session-cleanup:')) return []
    return [{ instance: instance.name, slot: String(JSON.parse(line).slot) }]
  }))
  const slots = new Map<string, string[]>()
  for (const { instance, slot } of claims) slots.set(slot, [...(slots.get(slot) ?? []), instance])
  const twice = [...slots].filter(([, holders]) => holders.length > 1)
  t.same(twice, [], 'no interval cleaned by two instances')
  const intervals = (Date.now() - started) / CLEANUP_INTERVAL_MS
  t.ok(slots.size >= intervals * 0.7, `${slots.size} cleanups in ${intervals.toFixed(0)} intervals (some fall in a failover window)`)
  const holders = new Set(claims.map(({ instance }) => instance))
  t.comment(`cleanups by ${[...holders].join(', ')}`)
})

t.test('npm run cluster: one command prints the URL and a login that works, and Ctrl-C leaves nothing behind', async (t) => {
  await stack.stop() // one cluster at a time on two cores
  const processes = () => execFileSync('ps', ['-eo', 'args']).toString().split('\n')
    .filter((line) => /mariadbd --defaults-file|haproxy -f|galera-check/.test(line))
  t.same(processes(), [], 'nothing of the stack above still runs')
  const child = spawn('npm', ['run', 'cluster'], { cwd: new URL('..', import.meta.url).pathname, env: { ...process.env, PORT: String(await freePort()) }, detached: true })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  t.teardown(() => {
    try { process.kill(-(child.pid as number), 'SIGKILL') } catch {} // gone already, as it should be
  })
  for (let tries = 0; tries < 600 && !/^open http/m.test(output) && child.exitCode === null; tries++) await sleep(100)
  const url = /^open (http\S+)/m.exec(output)?.[1]
  const login = /^log in as:\s+(\S+) \/ (\S+)/m.exec(output)
  t.ok(url && login, 'it prints the URL and a login', { output })
  const client = new Client(url as string)
  t.equal((await loginAs(client, login?.[1] as string, login?.[2] as string)).status, 200, 'the printed login works through HAProxy')
  t.equal((await client.request('/session')).json().authenticated, true)
  // Ctrl-C in a terminal signals the whole foreground process group.
  process.kill(-(child.pid as number), 'SIGINT')
  await exited
  t.match(output, /stopping the cluster/, 'it stops the cluster and exits')
  const dirs = [...new Set([...output.matchAll(/(\/tmp\/[\w-]+)/g)].map((match) => match[1] as string))]
  const instances = /^app instances:\s+(.*) \(/m.exec(output)?.[1]?.split(', ') ?? []
  // npm may exit before the script it ran has finished stopping what it started.
  for (let tries = 0; tries < 150 && (processes().length > 0 || dirs.some((dir) => existsSync(dir))); tries++) await sleep(100)
  t.same(processes(), [], 'no node, HAProxy or check of it still runs')
  t.equal(instances.length, 3, 'it printed its three instances')
  const answering = await Promise.all(instances.map((url) => new Client(url).request('/health/live').then(() => url, () => undefined)))
  t.same(answering.filter(Boolean), [], 'and none of them answers any more')
  t.ok(dirs.length >= 2, `it printed its directories (${dirs.join(', ')})`)
  t.same(dirs.filter((dir) => existsSync(dir)), [], 'they are gone')
})
