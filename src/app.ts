import Fastify, { type FastifyInstance, type FastifyPluginAsync, type FastifyServerOptions } from 'fastify'
import { trustProxyFunction, type ConfigSource } from './config/config.js'
import type { Authenticator } from './auth/authenticator.js'
import type { SessionUserMapper } from './session/identity.js'
import { logAbortedRequests, OneLinePerRequest } from './logger.js'
import apiDocs, { declareSessionCookie } from './plugins/api-docs.js'
import auth from './plugins/auth.js'
import configPlugin from './plugins/config.js'
import cors from './plugins/cors.js'
import errorHandler from './plugins/error-handler.js'
import metrics from './plugins/metrics.js'
import securityHeaders from './plugins/security-headers.js'
import sessionPlugin from './plugins/session.js'
import sessionStore from './plugins/session-store.js'
import sso from './plugins/sso.js'
import healthRoutes from './routes/health.js'
import loginRoutes from './routes/login.js'
import metricsRoutes from './routes/metrics.js'
import pageRoutes from './routes/page.js'
import sessionRoutes from './routes/session.js'
import ssoRoutes from './routes/sso.js'
import userSessionRoutes from './routes/user-sessions.js'

export interface BuildAppOptions {
  /** Exactly these variables; when absent, the process environment and `.env`. */
  env?: ConfigSource
  logger?: FastifyServerOptions['logger']
  /** Checks usernames and passwords; default: the htpasswd file named by AUTH_USERS_FILE. */
  authenticator?: Authenticator
  /**
   * Your own routes, registered behind the session bridge next to the built-in ones, so they read
   * `request.raw.session`; protect them with `requireUser` or `withUser` from src/auth/require-user.ts.
   */
  sessionRoutes?: FastifyPluginAsync
  /** Finds the logged-in user in sessions an earlier app wrote in its own shape (docs/migrating-from-express.md). */
  sessionUser?: SessionUserMapper
}

/**
 * Builds the application without listening. Rejects with a ConfigError when a variable is bad.
 * Routes that need no session are registered outside the session scope, so the Express bridge
 * and the store are never on their path.
 */
export async function buildApp (options: BuildAppOptions = {}): Promise<FastifyInstance> {
  // Fastify takes `trustProxy` at construction, before @fastify/env has read TRUST_PROXY: give it
  // a function that consults the validated setting once it is known.
  let trusts: (address: string, hop: number) => boolean = () => false
  const app = Fastify({
    logger: options.logger ?? false,
    logController: new OneLinePerRequest(),
    trustProxy: (address, hop) => trusts(address, hop)
  })

  try {
    await app.register(configPlugin, { env: options.env })
    trusts = trustProxyFunction(app.sessionConfig)
    logAbortedRequests(app)
    app.log.level = app.sessionConfig.LOG_LEVEL
    // First, so its onResponse hook sees every route.
    await app.register(metrics)

    await app.register(errorHandler)
    // Root hooks run before the session scope's bridge: every answer gets them, errors included.
    await app.register(securityHeaders)
    await app.register(cors)
    await app.register(apiDocs)
    // Before the store: a bad users file stops start-up before a pool is opened.
    await app.register(auth, { authenticator: options.authenticator })
    await app.register(sessionStore, { sessionUser: options.sessionUser })
    // Single sign-on when OIDC_ISSUER is set: the relying party, and the back-channel logout route.
    await app.register(sso)
    await app.register(healthRoutes)
    await app.register(metricsRoutes)
    await app.register(pageRoutes)
    await app.register(async function sessionScope (scope) {
      scope.addHook('onRoute', declareSessionCookie)
      // The guard and the bridge; the configuration and the store are the root's.
      await scope.register(sessionPlugin)
      await scope.register(sessionRoutes)
      await scope.register(loginRoutes)
      await scope.register(userSessionRoutes)
      if (app.sso) await scope.register(ssoRoutes)
      if (options.sessionRoutes) await scope.register(options.sessionRoutes)
    })
  } catch (error) {
    // Whatever opened before the failure (a pool, a timer) must not keep the process alive.
    await app.close().catch(() => {})
    throw error
  }
  return app
}
