import { setTimeout as sleep } from 'node:timers/promises'
import { createConnection, type RowDataPacket } from 'mysql2/promise'
import t from 'tap'
import { startClusterStack, DATABASE } from '../scripts/cluster/stack.js'
import { Client, type HttpResponse } from './helper.js'
import { loginAs } from './support/accounts.js'

// Three Galera nodes, three server processes (instance i writes through node i first), HAProxy in
// front, as `npm run cluster` starts them. First tight loops across instances (causal reads), then
// mixed traffic through HAProxy while a node and an instance are killed with -9 and brought back.

const CLEANUP_INTERVAL_MS = 1000
const WORKERS = 10
const users = [...Array.from({ length: WORKERS + 1 }, (_, i) => `user${i}`), 'witness']

const stack = await startClusterStack({
  users,
  // debug: each instance logs the maintenance lease it claims, so the test sees every cleanup.
  env: { SESSION_CLEANUP_INTERVAL: String(CLEANUP_INTERVAL_MS), LOG_LEVEL: 'debug' },
  log: (line) => t.comment(line)
})
t.teardown(() => stack.stop())
const { password } = stack.accounts
const started = Date.now()

/** The session id a cookie carries (`sid=s%3A<id>.<signature>`). */
function sessionIdOf (cookie: string | undefined): string {
  const value = decodeURIComponent(String(cookie).split('=')[1] ?? '')
  return value.slice(2, value.lastIndexOf('.'))
}

function on (base: string, client: Client): Client {
  const other = new Client(base)
  other.cookie = client.cookie
  return other
}

t.test('what one instance answers, the next request through another instance sees: logins, states, revocations, logouts', async (t) => {
  const [a, b, c] = stack.instances.map((instance) => instance.url) as [string, string, string]
  const failures: string[] = []
  // Several loops at once, so that the nodes are busy applying each other's writes.
  const loop = async (user: string) => {
    for (let round = 0; round < 15; round++) {
      const laptop = new Client(a)
      if ((await loginAs(laptop, user, password)).status !== 200) failures.push(`${user} round ${round}: login on A failed`)
      if ((await on(b, laptop).request('/session')).json().authenticated !== true) failures.push(`${user} round ${round}: B did not see the login on A`)
      await on(b, laptop).request('/session/state', { method: 'PUT', body: { round } })
      if ((await on(c, laptop).request('/session')).json().state?.round !== round) failures.push(`${user} round ${round}: C did not see the state written on B`)
      const phone = new Client(c)
      await loginAs(phone, user, password)
      const revoked = await phone.request('/session/all', { method: 'DELETE' })
      if (revoked.json().revoked !== 1) failures.push(`${user} round ${round}: the revocation on C ended ${revoked.body}`)
      if ((await on(a, laptop).request('/session')).json().authenticated !== false) failures.push(`${user} round ${round}: A still saw the session revoked on C`)
      const old = phone.cookie
      if ((await on(b, phone).request('/session/logout', { method: 'POST' })).status !== 204) failures.push(`${user} round ${round}: logout on B failed`)
      const stale = new Client(a)
      stale.cookie = old
      if ((await stale.request('/session')).json().authenticated !== false) failures.push(`${user} round ${round}: A still saw the session logged out on B`)
    }
  }
  await Promise.all(users.slice(0, WORKERS).map(loop))
  t.same(failures, [], `${WORKERS} users, 15 rounds each, each step read back at once through another instance and another node`)
})

interface Tally {
  statuses: Map<number, number>
  /** When each 503 came (ms since the run began); any other 5xx is a failure. */
  unavailable: number[]
  failures: string[]
  requests: number
  /** Sessions logged in while node 2 was away: their ids, to find on node 2 when it is back. */
  writtenWhileAway: Set<string>
}

t.test('mixed traffic through HAProxy while a Galera node and an app instance are killed with -9 and come back', async (t) => {
  const tally: Tally = { statuses: new Map(), unavailable: [], failures: [], requests: 0, writtenWhileAway: new Set() }
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
    let counter = 0
    while (!run.stopping) {
      await sleep(10)
      if (!loggedIn) {
        if (count(await loginAs(laptop, user, password), `${user} login`)) {
          loggedIn = true
          state = undefined
          if (nodeAway) tally.writtenWhileAway.add(sessionIdOf(laptop.cookie))
        }
        continue
      }
      const dice = Math.random()
      if (dice < 0.6) {
        const res = await laptop.request('/session')
        if (!count(res, `${user} read`)) continue
        const body = res.json()
        if (body.authenticated !== true) tally.failures.push(`${user} was logged out at ${now()} ms`)
        else if (state !== undefined && body.state?.n !== state) tally.failures.push(`${user} read state ${JSON.stringify(body.state)}, wrote ${state}`)
      } else if (dice < 0.85) {
        const n = ++counter
        state = count(await laptop.request('/session/state', { method: 'PUT', body: { n } }), `${user} write`) ? n : undefined
      } else if (dice < 0.93) {
        const old = laptop.cookie
        if (!count(await laptop.request('/session/logout', { method: 'POST' }), `${user} logout`)) continue
        loggedIn = false
        const stale = new Client(stack.url)
        stale.cookie = old
        const after = await stale.request('/session')
        if (count(after, `${user} read after logout`) && after.json().authenticated !== false) tally.failures.push(`${user}'s logout did not stick at ${now()} ms`)
      } else {
        if (!count(await loginAs(phone, user, password), `${user} phone login`)) continue
        const revoked = await phone.request('/session/all', { method: 'DELETE' })
        if (!count(revoked, `${user} revoke`)) { state = undefined; continue }
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
  const ids = [...tally.writtenWhileAway, ...witnesses.map((witness) => sessionIdOf(witness.cookie))]
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
  const answers = await Promise.all(witnesses.map((witness) => on(instance2.url, witness).request('/session')))
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
