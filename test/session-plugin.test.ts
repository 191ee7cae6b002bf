import type { IncomingMessage, ServerResponse } from 'node:http'
import fastifyEnv from '@fastify/env'
import fastifyExpress from '@fastify/express'
import Fastify, { type FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import sessionStorePlugin from '../src/plugins/session-store.js'
import sessionPlugin from '../src/plugins/session.js'
import healthRoutes from '../src/routes/health.js'
import { ConfigError } from '../src/config/config.js'
import { baseEnv, countRows, createTestDatabase, httpRequest, listen, sessionCookie, type Env } from './helper.js'

// The session plugin in an app of its own, in process: what it brings to its scope, what it
// leaves alone, and what it shares with plugins the app registered first.

async function appWith (t: Test, register: (app: FastifyInstance) => Promise<void>): Promise<string> {
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  await register(app)
  return await listen(app)
}

const counter = async (scope: FastifyInstance) => {
  scope.post('/count', async (request) => {
    const session = request.raw.session!
    const counted = session as typeof session & { count?: number }
    counted.count = (counted.count ?? 0) + 1
    return { count: counted.count }
  })
}

t.test('only the scope it is registered in gets sessions; a sibling scope gets none', async (t) => {
  const db = await createTestDatabase(t)
  const env: Env = { ...baseEnv, ...db.env }
  const base = await appWith(t, async (app) => {
    await app.register(async (scope) => {
      await scope.register(sessionPlugin, { env })
      await counter(scope)
    })
    await app.register(async (sibling) => {
      sibling.post('/other', async (request) => ({ session: request.raw.session !== undefined }))
    })
  })
  const other = await httpRequest(`${base}/other`, { method: 'POST' })
  t.same(other.json(), { session: false })
  t.equal(other.headers['set-cookie'], undefined)
  t.equal(other.headers['cache-control'], undefined, 'none of the bridge\'s hooks run there')
  t.equal(await countRows(db), 0)

  const first = await httpRequest(`${base}/count`, { method: 'POST' })
  const cookie = sessionCookie(first.headers['set-cookie'])!
  const second = await httpRequest(`${base}/count`, { method: 'POST', headers: { cookie } })
  t.same(second.json(), { count: 2 })
})

t.test('the store plugin at the root, the session plugin in a scope: one store, health outside the bridge', async (t) => {
  const db = await createTestDatabase(t)
  let stores: unknown[] = []
  const base = await appWith(t, async (app) => {
    await app.register(sessionStorePlugin, { env: { ...baseEnv, ...db.env } })
    await app.register(healthRoutes)
    await app.register(async (scope) => {
      await scope.register(sessionPlugin)
      await counter(scope)
      stores = [app.sessionStore, scope.sessionStore]
    })
  })
  t.equal(stores[0], stores[1], 'the scope shares the root\'s store')
  const ready = await httpRequest(`${base}/health/ready`)
  t.equal(ready.status, 200)
  t.equal(ready.headers['set-cookie'], undefined, 'health gets no session')
  t.same((await httpRequest(`${base}/count`, { method: 'POST' })).json(), { count: 1 })
  t.equal(await countRows(db), 1)
})

t.test('the app\'s own @fastify/express and @fastify/env stay as they are', async (t) => {
  const db = await createTestDatabase(t)
  const base = await appWith(t, async (app) => {
    // The app's own configuration under `config`: the plugin's is `sessionConfig`, no clash.
    await app.register(fastifyEnv, { schema: { type: 'object', properties: { GREETING: { type: 'string', default: 'hello' } } }, data: {} })
    await app.register(fastifyExpress)
    app.use((req: IncomingMessage & { greeted?: boolean }, _res: ServerResponse, next: () => void) => {
      req.greeted = true
      next()
    })
    // Typed values, validated as variables are.
    await app.register(sessionPlugin, { config: { ...baseEnv, ...db.env, SESSION_MAX_AGE: 60_000 } })
    app.get('/greeting', async (request) => ({
      greeting: (app as unknown as { config: { GREETING: string } }).config.GREETING,
      greeted: (request.raw as { greeted?: boolean }).greeted === true,
      maxAge: app.sessionConfig.SESSION_MAX_AGE,
      session: request.raw.session !== undefined
    }))
  })
  const res = await httpRequest(`${base}/greeting`)
  t.same(res.json(), { greeting: 'hello', greeted: true, maxAge: 60_000, session: true }, 'both Express middleware run, both configurations are there')
  t.match(String(res.headers['set-cookie']), /Max-Age=60(;|$)/, 'the typed SESSION_MAX_AGE is the one applied')
})

t.test('a Secure cookie (the default) over plain HTTP: no session, no row; the app\'s trustProxy decides what is HTTPS', async (t) => {
  const db = await createTestDatabase(t)
  const env: Env = { ...baseEnv, ...db.env, SESSION_COOKIE_SECURE: 'true' }
  const app = Fastify({ logger: false, trustProxy: '127.0.0.1' })
  t.teardown(() => app.close())
  await app.register(sessionPlugin, { env })
  app.post('/seen', async (request) => ({ session: request.raw.session !== undefined }))
  const base = await listen(app)

  const plain = await httpRequest(`${base}/seen`, { method: 'POST' })
  t.same(plain.json(), { session: false })
  t.equal(plain.headers['set-cookie'], undefined)
  t.equal(await countRows(db), 0, 'no row for a cookie the browser would never send back')

  const proxied = await httpRequest(`${base}/seen`, { method: 'POST', headers: { 'x-forwarded-proto': 'https' } })
  t.same(proxied.json(), { session: true }, 'HTTPS as the app\'s trusted proxy reports it')
  t.match(String(proxied.headers['set-cookie']), /; Secure/)
  t.equal(await countRows(db), 1)
})

t.test('a failed answer carries no session cookie and writes no session, whoever fails', async (t) => {
  const db = await createTestDatabase(t)
  const env: Env = { ...baseEnv, ...db.env, SESSION_RESAVE: 'true' }
  const base = await appWith(t, async (app) => {
    app.setErrorHandler((error: Error & { statusCode?: number }, _request, reply) => {
      reply.code(error.statusCode ?? 500).send({ problem: 'sorry' })
    })
    await app.register(async (scope) => {
      await scope.register(sessionPlugin, { env })
      await counter(scope)
      scope.post('/count-then-throw', async (request) => {
        (request.raw.session as unknown as { count: number }).count = 1
        throw new Error('the route failed after changing the session')
      })
      scope.post('/count-then-500', async (request, reply) => {
        (request.raw.session as unknown as { count: number }).count = 1
        return reply.code(500).send({ problem: 'chosen' })
      })
      // A hook of the app's that fails after the bridge's onSend (RESAVE: it has set the cookie).
      scope.register(async (late) => {
        late.addHook('onSend', async (request) => {
          if (request.headers['x-fail-late'] === 'yes') throw new Error('a later onSend hook failed')
        })
        late.post('/late', async () => ({ ok: true }))
      })
    })
  })
  for (const path of ['/count-then-throw', '/count-then-500']) {
    const res = await httpRequest(`${base}${path}`, { method: 'POST' })
    t.equal(res.status, 500, path)
    t.equal(res.headers['set-cookie'], undefined, `${path}: no cookie`)
  }
  t.equal(await countRows(db), 0, 'and no row for either')

  const cookie = sessionCookie((await httpRequest(`${base}/count`, { method: 'POST' })).headers['set-cookie'])!
  const ok = await httpRequest(`${base}/late`, { method: 'POST', headers: { cookie } })
  t.ok(sessionCookie(ok.headers['set-cookie']), 'the control: with RESAVE an answer renews the cookie')
  const failed = await httpRequest(`${base}/late`, { method: 'POST', headers: { cookie, 'x-fail-late': 'yes' } })
  t.equal(failed.status, 500)
  t.equal(sessionCookie(failed.headers['set-cookie']), undefined, 'a hook failing after the bridge: its cookie is taken back')
})

t.test('a cross-site request under the app\'s own @fastify/express: 403, no session made, no row', async (t) => {
  const db = await createTestDatabase(t)
  const base = await appWith(t, async (app) => {
    await app.register(fastifyExpress)
    await app.register(async (scope) => {
      await scope.register(sessionPlugin, { env: { ...baseEnv, ...db.env } })
      await counter(scope)
    })
  })
  const res = await httpRequest(`${base}/count`, { method: 'POST', headers: { origin: 'https://elsewhere.example' } })
  t.equal(res.status, 403)
  t.equal(res.headers['set-cookie'], undefined)
  t.equal(await countRows(db), 0)
  t.equal((await httpRequest(`${base}/count`, { method: 'POST' })).status, 200, 'the control: without Origin it passes')
})

t.test('a bad variable stops the app\'s start with a ConfigError that names it', async (t) => {
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  app.register(sessionPlugin, { env: { ...baseEnv, SESSION_PORT: 'three' } })
  const error = await app.ready().then(() => undefined, (error: unknown) => error)
  t.type(error, ConfigError)
  t.match((error as Error).message, /^SESSION_PORT must be an integer 1-65535/)
})
