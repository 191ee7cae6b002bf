import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import type { FastifyInstance, FastifyPluginAsync, RouteOptions } from 'fastify'
import t from 'tap'
import { build, type Env } from './helper.js'

// Routes the document leaves out on purpose, with the reason.
const UNDOCUMENTED: Record<string, string> = {
  'OPTIONS *': '@fastify/cors answers preflights for every path: not an operation, and OpenAPI has no path for "any path"'
}

/**
 * Builds an app and returns it with every route it registered, seen by an onRoute hook added the
 * moment Fastify creates the instance (its `fastify.initialization` diagnostics channel), before
 * buildApp registers anything.
 */
async function buildAndCollect (t: Parameters<typeof build>[0], env: Env = {}, sessionRoutes?: FastifyPluginAsync) {
  const routes: Array<{ method: string, url: string }> = []
  let seen: FastifyInstance | undefined
  const onCreate = (message: unknown) => {
    const { fastify } = message as { fastify: FastifyInstance }
    if (seen) return
    seen = fastify
    fastify.addHook('onRoute', (route: RouteOptions) => {
      for (const method of [route.method].flat()) routes.push({ method, url: route.url })
    })
  }
  subscribe('fastify.initialization', onCreate)
  try {
    const app = await build(t, env, { sessionRoutes })
    return { app, routes }
  } finally {
    unsubscribe('fastify.initialization', onCreate)
  }
}

/** Fastify's `/session/all/:id` is OpenAPI's `/session/all/{id}`. */
const openApiPath = (url: string) => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}')

t.test('every route the app registers is in GET /docs/json with its method', async (t) => {
  const extra: FastifyPluginAsync = async (scope) => {
    scope.get('/session/extra', { schema: { summary: 'A consumer\'s own session route' } }, async () => ({}))
  }
  const { app, routes } = await buildAndCollect(t, {}, extra)
  const doc = (await app.inject('/docs/json')).json()
  const documented = routes.filter(({ method, url }) =>
    method !== 'HEAD' && url !== '/docs' && !url.startsWith('/docs/') && UNDOCUMENTED[`${method} ${url}`] === undefined)

  t.ok(documented.length > 10, `${documented.length} routes collected (control: the hook saw the app's routes)`)
  for (const required of ['GET /metrics', 'GET /', 'POST /session/login', 'DELETE /session/all/:id', 'GET /session/extra']) {
    t.ok(documented.some(({ method, url }) => `${method} ${url}` === required), `${required} was registered`)
  }
  for (const { method, url } of documented) {
    t.ok(doc.paths[openApiPath(url)]?.[method.toLowerCase()], `${method} ${url} is documented`)
  }
  for (const key of Object.keys(UNDOCUMENTED)) {
    t.ok(routes.some(({ method, url }) => `${method} ${url}` === key), `${key} is still registered (else drop it from the list)`)
  }
})

t.test('the session cookie is an apiKey-in-cookie scheme, required by the session routes only', async (t) => {
  const { app, routes } = await buildAndCollect(t, { SESSION_COOKIE_NAME: 'my_sid' })
  const doc = (await app.inject('/docs/json')).json()
  t.same(doc.components.securitySchemes, { sessionCookie: { type: 'apiKey', in: 'cookie', name: 'my_sid' } })
  t.notOk(doc.security, 'not a requirement of every operation')

  const operations = routes.filter(({ method, url }) => method !== 'HEAD' && doc.paths[openApiPath(url)]?.[method.toLowerCase()])
  for (const { method, url } of operations) {
    const security = doc.paths[openApiPath(url)][method.toLowerCase()].security
    if (url.startsWith('/session')) t.same(security, [{ sessionCookie: [] }], `${method} ${url} uses the cookie`)
    else t.notOk(security, `${method} ${url} needs no cookie`)
  }
})
