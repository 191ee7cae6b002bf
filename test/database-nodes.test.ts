import t from 'tap'
import { Client, createTestDatabase, build, listen } from './helper.js'
import { scrape } from './support/metrics.js'
import { freePort } from './support/private-mariadb.js'

// SESSION_HOST with several entries on plain servers (test/cluster.test.ts runs a Galera cluster):
// the first usable one serves; one that does not answer is skipped within the request's deadline.

t.test('the first node listed does not answer: the next one serves, within the deadline', async (t) => {
  const db = await createTestDatabase(t)
  const dead = await freePort()
  const app = await build(t, { ...db.env, SESSION_HOST: `127.0.0.1:${dead},${db.env.SESSION_HOST}:${db.env.SESSION_PORT}` })
  const base = await listen(app)
  const client = new Client(base)
  const started = Date.now()
  const first = await client.request('/session')
  t.equal(first.status, 200)
  t.ok(Date.now() - started < 1200, `answered in ${Date.now() - started} ms`)
  t.ok(client.cookie, 'a session, stored')
  t.equal((await client.request('/session')).json().createdAt, first.json().createdAt, 'read back from the node that answers')
  t.equal((await client.request('/health/ready')).status, 200, 'ready: a node answers')
  const metrics = await scrape(base)
  t.equal(metrics.value('session_store_node_usable', { node: `127.0.0.1:${dead}` }), 0, 'the metrics show the dead node unused')
  t.equal(metrics.value('session_store_node_usable', { node: `${db.env.SESSION_HOST}:${db.env.SESSION_PORT}` }), 1, 'and the other used')
})

t.test('no node answers: 503 with Retry-After within 2 s, not ready, no cookie', async (t) => {
  const [one, two] = [await freePort(), await freePort()]
  const db = await createTestDatabase(t)
  const app = await build(t, { ...db.env, SESSION_HOST: `127.0.0.1:${one},127.0.0.1:${two}` })
  const client = new Client(await listen(app))
  const started = Date.now()
  const res = await client.request('/session')
  t.equal(res.status, 503)
  t.ok(Date.now() - started < 2000, `answered in ${Date.now() - started} ms`)
  t.equal(res.headers['retry-after'], '5')
  t.notOk(res.headers['set-cookie'])
  t.notMatch(res.body, /127\.0\.0\.1|ECONNREFUSED|node/, 'nothing about the nodes in the answer')
  t.equal((await client.request('/health/ready')).status, 503)
})
