import fp from 'fastify-plugin'
import { lifetimePolicy, usesDatabase } from '../config/config.js'
import { scheduleCleanup } from '../session/cleanup.js'
import type { SessionUserMapper } from '../session/identity.js'
import type { ManagedStore } from '../session/managed-store.js'
import { MemorySessionStore } from '../session/memory-store.js'
import { STORE_DEADLINE_MS } from '../session/mysql-pool.js'
import { createMysqlStore } from '../session/mysql-store.js'
import configPlugin, { type ConfigPluginOptions } from './config.js'
import { metricsOf } from './metrics.js'

declare module 'fastify' {
  interface FastifyInstance {
    sessionStore: ManagedStore
  }
}

export interface SessionStoreOptions extends ConfigPluginOptions {
  /** Finds the user in sessions of another shape (an Express app's being migrated): see identity.ts. */
  sessionUser?: SessionUserMapper
}

/**
 * The session store: MySQL/MariaDB when SESSION_HOST is set, memory otherwise. A database that is
 * down at start does not stop the server: the table is created when it first answers. Without the
 * bridge's hooks: a scope that needs the store but no sessions (health, metrics) registers this.
 */
export default fp<SessionStoreOptions>(async function sessionStorePlugin (fastify, options) {
  if (!fastify.hasDecorator('sessionConfig')) await fastify.register(configPlugin, options)
  const { sessionUser } = options
  const config = fastify.sessionConfig
  const log = fastify.log.child({ component: 'session-store' })

  if (!usesDatabase(config)) {
    const store = new MemorySessionStore(lifetimePolicy(config), sessionUser)
    fastify.decorate('sessionStore', store)
    const stopCleanup = scheduleCleanup(store, config.SESSION_CLEANUP_INTERVAL, log)
    fastify.addHook('onClose', stopCleanup)
    return
  }

  const { pool, store } = createMysqlStore(config, { deadlineMs: STORE_DEADLINE_MS, log, observe: metricsOf(fastify)?.observeStore, sessionUser })
  fastify.decorate('sessionStore', store)
  try {
    await store.ping()
  } catch (error) {
    log.warn({ err: error }, 'the session database does not answer; session routes answer 503 until it does')
  }
  const stopCleanup = scheduleCleanup(store, config.SESSION_CLEANUP_INTERVAL, log)
  fastify.addHook('onClose', async () => {
    await stopCleanup()
    await store.close()
    await pool.end()
  })
}, { name: 'session-store' })
