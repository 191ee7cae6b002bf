// The package's entry point (package.json `exports`): the session plugin an app of its own
// registers, the built-in routes as separate plugins, and `buildApp`, which composes all of them
// into this project's server. Importing it starts nothing; src/server.ts is the server's own entry.
import './session/session-data.js'

export { default, default as sessionPlugin, type SessionPluginOptions } from './plugins/session.js'
export { default as sessionStorePlugin } from './plugins/session-store.js'
export { buildApp, type BuildAppOptions } from './app.js'
export { loggerOptions } from './logger.js'

export { default as sessionRoutes } from './routes/session.js'
export { default as loginRoutes } from './routes/login.js'
export { default as userSessionRoutes } from './routes/user-sessions.js'
export { default as ssoPlugin, type SingleSignOn } from './plugins/sso.js'
export { default as ssoRoutes } from './routes/sso.js'
export { default as healthRoutes } from './routes/health.js'
export { default as pageRoutes } from './routes/page.js'
export { default as apiDocs, declareSessionCookie } from './plugins/api-docs.js'
export { default as metricsPlugin, type Metrics } from './plugins/metrics.js'
export { default as metricsRoutes } from './routes/metrics.js'
export { default as errorHandler } from './plugins/error-handler.js'

export { requireUser, withUser, type AuthenticatedRawRequest, type AuthenticatedScope } from './auth/require-user.js'
export type { Authenticator } from './auth/authenticator.js'
export { HtpasswdAuthenticator } from './auth/htpasswd.js'
export type { RequestSession, SessionUser } from './session/session-data.js'
export { isSessionUser, type SessionUserMapper } from './session/identity.js'
export type { ManagedStore, StoredSession } from './session/managed-store.js'
export { SessionEndedError, SessionRejectedError } from './session/managed-store.js'
export { StoreUnavailableError } from './session/store-errors.js'
export { ConfigError, loadConfig, type Config, type ConfigValues } from './config/config.js'
export { configSchema } from './config/schema.js'
export { HttpError } from './http-error.js'
