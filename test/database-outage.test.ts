import t from 'tap'
import { Client, baseEnv, build, listen, privateDatabase } from './helper.js'
import { MARIADBD, PrivateMariaDb, freePort } from './support/private-mariadb.js'

const databaseAt = (port: number) => ({
  SESSION_HOST: '127.0.0.1', SESSION_PORT: String(port), SESSION_USER: 'root', SESSION_DATABASE: 'mysql'
})

t.test('database down at start: the server starts, is not ready, answers 503 fast', async (t) => {
  const port = await freePort()
  const app = await build(t, databaseAt(port))
  const client = new Client(await listen(app))

  let started = Date.now()
  const ready = await client.request('/health/ready')
  t.equal(ready.status, 503)
  t.same(ready.json(), { status: 'unavailable' })
  t.ok(Date.now() - started < 1500, 'readiness answers within about 1 s')
  t.equal((await client.request('/health/live')).status, 200, 'liveness does not depend on the database')

  started = Date.now()
  const res = await client.request('/session')
  t.equal(res.status, 503)
  t.ok(Date.now() - started < 2000, 'within 2 s')
  t.equal(res.headers['retry-after'], '5')
  t.notOk(res.headers['set-cookie'], 'no cookie for a session that was not stored')
  t.same(res.json(), { statusCode: 503, error: 'Service Unavailable', message: 'The session store is unavailable; retry later' })
  t.notMatch(res.body, /127\.0\.0\.1|ECONNREFUSED|SELECT|INSERT/)
})

t.test('a stopped and restarted database: 503 meanwhile, then everything works without a restart', { skip: MARIADBD ? false : 'mariadbd is not installed' }, async (t) => {
  const database = await PrivateMariaDb.create()
  t.teardown(() => database.destroy())
  const app = await build(t, { ...baseEnv, ...databaseAt(database.port) })
  const client = new Client(await listen(app))
  const created = (await client.request('/session')).json().createdAt

  await database.stop('SIGKILL')
  t.equal((await client.request('/health/ready')).status, 503)
  const during = await client.request('/session')
  t.equal(during.status, 503)
  t.notOk(during.headers['set-cookie'])

  await database.start()
  t.equal((await client.request('/health/ready')).status, 200)
  const after = await client.request('/session')
  t.equal(after.status, 200)
  t.equal(after.json().createdAt, created, 'the same session, read again from the restarted database')
})

t.test('database down at start, up later: the same app serves sessions without a restart', { skip: MARIADBD ? false : 'mariadbd is not installed' }, async (t) => {
  const port = await freePort()
  const app = await build(t, { ...databaseAt(port), SESSION_DATABASE: 'sessions' })
  const client = new Client(await listen(app))
  t.equal((await client.request('/session')).status, 503, 'nothing answers on the database port yet')

  const db = await privateDatabase(t, port)
  t.equal((await client.request('/health/ready')).status, 200)
  const first = await client.request('/session')
  t.equal(first.status, 200)
  t.ok(client.cookie, 'a session cookie')
  t.equal((await client.request('/session')).json().createdAt, first.json().createdAt, 'stored in the database that came up')
  const [tables] = await db.admin.query('SHOW TABLES')
  t.same(tables, [{ Tables_in_sessions: 'session_leases' }, { Tables_in_sessions: 'sessions' }], 'the session table and the cleanup lease table were created when the database first answered')
})
