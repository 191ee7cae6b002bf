import fastifyCookie from '@fastify/cookie'
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify'
import sessionPlugin, { loginRoutes, requireUser, type Authenticator, type ConfigValues } from 'fastify-session-backend'

// This app's own session fields, typed on `request.raw.session` next to the package's.
declare module 'express-session' {
  interface SessionData {
    visits: number
  }
}

// Stands in for the app's own user database: the package only needs `verify`.
const accounts: Authenticator = {
  async verify (username, password) {
    return username === 'ann' && password === 'correct horse battery staple' ? { name: 'ann' } : null
  }
}

/**
 * An app with routes of its own: public ones outside the session scope, session ones inside it,
 * the package's login routes beside them, and its own cookie plugin, hook and error handler.
 * `env` replaces the process environment (the tests pass it); by default SESSION_* and the
 * other variables come from the environment and `.env`, as for the package's own server.
 */
export async function buildExampleApp (env?: ConfigValues): Promise<FastifyInstance> {
  const app = Fastify({ logger: false })
  await app.register(fastifyCookie)

  app.addHook('onRequest', async (_request, reply) => {
    reply.header('x-served-by', 'example-app')
  })

  app.setErrorHandler((error: FastifyError & { headers?: Record<string, string> }, _request, reply) => {
    const statusCode = error.statusCode ?? 500
    // The session plugin's errors carry their headers (Retry-After on a 503) for the handler to send.
    if (error.headers) reply.headers(error.headers)
    reply.code(statusCode).send({ problem: statusCode >= 500 ? 'try again later' : error.message })
  })

  // Outside the session scope: no session is read or created for these.
  app.get('/public', async (request) => ({ public: true, theme: request.cookies.theme ?? null }))

  await app.register(async function withSessions (scope) {
    await scope.register(sessionPlugin, env === undefined ? {} : { env })
    await scope.register(loginRoutes, { authenticator: accounts })

    scope.post('/visits', async (request) => {
      const session = request.raw.session
      if (!session) return { visits: null } // a Secure cookie over plain HTTP: no session at all
      session.visits = (session.visits ?? 0) + 1
      return { visits: session.visits }
    })

    scope.get('/me', { preHandler: requireUser }, async (request) => {
      // requireUser has checked it: a logged-in user's session.
      return { name: request.raw.session?.user?.name, visits: request.raw.session?.visits ?? 0 }
    })

    scope.put('/theme/:theme', async (request, reply) => {
      const { theme } = request.params as { theme: string }
      reply.setCookie('theme', theme, { path: '/', httpOnly: true, sameSite: 'lax' })
      return { theme }
    })
  })

  return app
}
