import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { LIVE_SESSIONS_TTL_MS } from '../src/plugins/metrics.js'
import { Client, build, countRows, httpRequest, listen, serve } from './helper.js'
import { loginAs, writeUsersFile } from './support/accounts.js'
import { scrape, type Scrape } from './support/metrics.js'
import { freePort } from './support/private-mariadb.js'

const now = () => Math.floor(Date.now() / 1000)

t.test('requests are counted by route template and status, and timed', async (t) => {
  const { base, client } = await serve(t)
  await client.request('/session')
  await client.request('/session')
  await client.request('/no/such/page')
  await client.request('/session/all/some-handle', { method: 'DELETE' })
  const metrics = await scrape(base)
  t.equal(metrics.value('http_requests_total', { method: 'GET', route: '/session', status_code: '200' }), 2)
  t.equal(metrics.value('http_request_duration_seconds_count', { method: 'GET', route: '/session', status_code: '200' }), 2)
  t.equal(metrics.value('http_requests_total', { route: 'unmatched', status_code: '404' }), 1, 'unknown URLs share one series')
  t.equal(metrics.value('http_requests_total', { method: 'DELETE', route: '/session/all/:id', status_code: '401' }), 1, 'the template, not the raw URL')
  t.notMatch(metrics.text, /some-handle|no\/such/, 'no raw URL in any label')
  t.equal(metrics.storeQueries('insert'), 1, 'the first answer stored its session')
  t.equal(metrics.storeQueries('read'), 2, 'the next session requests read it back')
})

t.test('failed store operations are counted', async (t) => {
  // Nothing listens on that port: every connection is refused at once.
  const { base } = await serve(t, { SESSION_PORT: String(await freePort()) })
  t.equal((await httpRequest(`${base}/session`)).status, 503)
  const metrics = await scrape(base)
  t.equal(metrics.value('session_store_errors_total', { operation: 'ping' }), 1, 'the start-up ping')
  t.equal(metrics.value('session_store_errors_total', { operation: 'insert' }), 1, 'the session that could not be stored')
})

t.test('logins are counted by outcome', async (t) => {
  const { base, client } = await serve(t, { AUTH_USERS_FILE: writeUsersFile(t, { ann: 'correct horse' }) })
  await loginAs(client, 'ann', 'correct horse')
  for (let i = 0; i < 5; i++) await loginAs(new Client(base), 'ann', 'wrong')
  t.equal((await loginAs(new Client(base), 'ann', 'wrong')).status, 429)
  await loginAs(client, 'ann', '', {}) // 400: not a login attempt
  const metrics = await scrape(base)
  t.equal(metrics.value('session_logins_total', { outcome: 'success' }), 1)
  t.equal(metrics.value('session_logins_total', { outcome: 'invalid' }), 5)
  t.equal(metrics.value('session_logins_total', { outcome: 'throttled' }), 1)
  t.equal(metrics.value('session_logins_total', { outcome: 'unavailable' }), 0, 'present at 0 before the first one')

  const noUsers = await serve(t)
  await loginAs(noUsers.client, 'ann', 'correct horse')
  t.equal((await scrape(noUsers.base)).value('session_logins_total', { outcome: 'unavailable' }), 1, 'no users configured: 503')
})

t.test('revoked sessions are counted by reason', async (t) => {
  const { base } = await serve(t, { AUTH_USERS_FILE: writeUsersFile(t, { ann: 'correct horse' }) })
  const devices = Array.from({ length: 5 }, () => new Client(base))
  for (const device of devices) await loginAs(device, 'ann', 'correct horse')
  const [first, second] = devices as [Client, Client]
  t.equal((await second.request('/session/logout', { method: 'POST' })).status, 204)
  const list = (await first.request('/session/all')).json() as Array<{ id: string, current: boolean }>
  const other = list.find((entry) => !entry.current)
  t.equal((await first.request(`/session/all/${other?.id}`, { method: 'DELETE' })).status, 204)
  t.same((await first.request('/session/all', { method: 'DELETE' })).json(), { revoked: 2 })
  const metrics = await scrape(base)
  t.equal(metrics.value('sessions_revoked_total', { reason: 'revoke_one' }), 1)
  t.equal(metrics.value('sessions_revoked_total', { reason: 'logout' }), 1)
  t.equal(metrics.value('sessions_revoked_total', { reason: 'revoke_others' }), 2)
  t.equal(metrics.value('sessions_revoked_total', { reason: 'admin' }), 0)
})

t.test('the live-sessions gauge counts unexpired rows, at most once per TTL', async (t) => {
  const { base, db } = await serve(t)
  const insert = (prefix: string, count: number, expires: number) => db.pool.query('INSERT INTO sessions (session_id, expires, data) VALUES ?',
    [Array.from({ length: count }, (_, i) => [`${prefix}${i}`, expires, '{"cookie":{}}'])])
  await insert('live', 3, now() + 3600)
  await insert('old', 2, now() - 10)

  const first = await scrape(base)
  t.equal(first.value('sessions_live'), 3, 'expired rows do not count')
  await insert('more', 4, now() + 3600)
  const cached = await scrape(base)
  t.equal(cached.value('sessions_live'), 3, 'within the TTL the count is reused')
  t.equal(cached.storeQueries('count'), 1, 'one COUNT for both scrapes')

  await sleep(LIVE_SESSIONS_TTL_MS + 100)
  t.equal((await scrape(base)).value('sessions_live'), 7, 'counted again once stale')
  // A scrape shows the store's operations as they were before its own count.
  t.equal((await scrape(base)).storeQueries('count'), 2, 'one more COUNT')
})

t.test('with the memory store the gauge is its number of sessions', async (t) => {
  const app = await build(t)
  const base = await listen(app)
  await httpRequest(`${base}/session`)
  await httpRequest(`${base}/session`)
  t.equal((await scrape(base)).value('sessions_live'), 2)
})

t.test('GET /metrics creates no session and runs no session query', async (t) => {
  const { base, db, client } = await serve(t)
  await client.request('/session')
  await scrape(base) // counts the live sessions: the next scrapes within the TTL reuse that
  const before = await scrape(base)
  const res = await httpRequest(`${base}/metrics`, { headers: { cookie: client.cookie as string } })
  t.equal(res.status, 200)
  t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/)
  t.notOk(res.headers['set-cookie'], 'no cookie')
  const after = await scrape(base)
  // The store's own start-up work (claiming the keying lease, keying an upgraded table) may finish meanwhile.
  const requestWork = (metrics: Scrape) => metrics.storeQueries() - metrics.storeQueries('cleanup lease') - metrics.storeQueries('key users')
  t.equal(requestWork(after), requestWork(before), 'no store operation at all (the count is cached), not even reading the session whose cookie came along')
  t.equal(await countRows(db), 1, 'only the session the client made itself')
})

t.test('METRICS=off: no /metrics, and none in the document', async (t) => {
  const app = await build(t, { METRICS: 'off' })
  t.equal((await app.inject('/metrics')).statusCode, 404)
  t.notOk((await app.inject('/docs/json')).json().paths['/metrics'])
})

t.test('METRICS=<port>: served on its own listener, absent from the main port', async (t) => {
  const port = await freePort()
  const app = await build(t, { METRICS: String(port), HOST: '127.0.0.1' })
  const base = await listen(app)
  await httpRequest(`${base}/health/live`)
  const metrics = await scrape(`http://127.0.0.1:${port}`)
  t.equal(metrics.value('http_requests_total', { route: '/health/live' }), 1, 'the main port\'s requests')
  t.equal((await httpRequest(`${base}/metrics`)).status, 404, 'not on the main port')
  t.notOk((await app.inject('/docs/json')).json().paths['/metrics'])

  await app.close()
  await t.rejects(httpRequest(`http://127.0.0.1:${port}/metrics`), { code: 'ECONNREFUSED' }, 'closed with the app')
})

t.test('METRICS=<port> that is taken stops start-up with a message', async (t) => {
  const holder = await build(t, { HOST: '127.0.0.1' })
  const taken = new URL(await listen(holder)).port
  const app = await build(t, { METRICS: taken, HOST: '127.0.0.1' }).catch((error: unknown) => error)
  t.match(app, { name: 'ConfigError', message: `METRICS=${taken}: cannot listen on 127.0.0.1:${taken} (EADDRINUSE)` })
})
