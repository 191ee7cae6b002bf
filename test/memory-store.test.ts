import t from 'tap'
import { Client, build, listen } from './helper.js'

t.test('without SESSION_HOST sessions live in memory, with a warning', async (t) => {
  const app = await build(t, { SESSION_HOST: undefined })
  const client = new Client(await listen(app))
  const first = (await client.request('/session')).json()
  const again = (await client.request('/session')).json()
  t.equal(again.createdAt, first.createdAt)
  t.equal((await app.inject({ url: '/health/ready' })).statusCode, 200)
})

t.test('the warning is logged at start', async (t) => {
  const lines: string[] = []
  const { buildApp } = await import('../src/app.js')
  const app = await buildApp({
    env: { NODE_ENV: 'test', SESSION_SECRET: 'x' },
    logger: { level: 'warn', stream: { write: (line: string) => { lines.push(line) } } }
  })
  t.teardown(() => app.close())
  await app.ready()
  t.match(lines.join(''), /SESSION_HOST is not set: sessions are kept in memory and vanish when this process stops/)
})

t.test('the memory store prunes expired sessions', async (t) => {
  const app = await build(t, { SESSION_MAX_AGE: '1000' })
  const client = new Client(await listen(app))
  await client.request('/session')
  await new Client(client.base).request('/session')
  // Expiries are whole seconds, as in the database's `expires` column.
  await new Promise((resolve) => setTimeout(resolve, 2100))
  t.equal(await app.sessionStore.cleanupExpired(), 2)
  t.equal(await app.sessionStore.cleanupExpired(), 0)
})

t.test('claimOnce in memory: once while it holds, again after its time or once given back', async (t) => {
  const app = await build(t, { SESSION_HOST: undefined })
  const store = app.sessionStore
  t.equal(await store.claimOnce('a', 60000), true)
  t.equal(await store.claimOnce('a', 60000), false, 'the second claim loses')
  await store.releaseOnce('a')
  t.equal(await store.claimOnce('a', 60000), true, 'given back')
  t.equal(await store.claimOnce('b', 1), true)
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.equal(await store.claimOnce('b', 60000), true, 'past its time')
})
