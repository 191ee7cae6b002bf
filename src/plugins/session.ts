import fp from 'fastify-plugin'
import crossSiteGuard from './cross-site-guard.js'
import sessionBridge from './session-bridge.js'
import sessionStore, { type SessionStoreOptions } from './session-store.js'

/** Where the variables come from (see config.ts) and, for sessions of another app's shape, a `sessionUser` mapper. */
export type SessionPluginOptions = SessionStoreOptions

/**
 * The session stack as one plugin, for an app of its own: the validated SESSION_* configuration
 * (`fastify.sessionConfig`), the store (`fastify.sessionStore`, with its cleanup), the cross-site
 * guard and the express-session bridge, so the routes registered in the same scope read a typed
 * `request.raw.session`. Like any fastify-plugin, it applies to the scope it is registered in:
 * register it inside an encapsulated plugin to keep other routes free of sessions.
 *
 * A store (and its configuration) that a parent scope registered with the store plugin is shared,
 * not made twice: `buildApp` registers it at the root (its health and metrics routes need the store
 * without the bridge) and this plugin in the scope of the session routes.
 */
export default fp<SessionPluginOptions>(async function sessionPlugin (fastify, options) {
  if (!fastify.hasDecorator('sessionStore')) await fastify.register(sessionStore, options)
  await fastify.register(crossSiteGuard)
  await fastify.register(sessionBridge)
}, { name: 'session' })
