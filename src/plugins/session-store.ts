import fp from 'fastify-plugin'
import { databaseEndpoints, endpointName, lifetimePolicy, usesDatabase } from '../config/config.js'
import { scheduleCleanup } from '../session/cleanup.js'
import type { SessionUserMapper } from '../session/identity.js'
import type { ManagedStore } from '../session/managed-store.js'
import { MemorySessionStore } from '../session/memory-store.js'
import { STORE_DEADLINE_MS } from '../session/mysql-pool.js'
import { createMysqlStore } from '../session/mysql-store.js'
import { DatabaseConfigError, diagnoseStartup } from '../session/startup-check.js'
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
 * The session store: MySQL/MariaDB when SESSION_HOST is set, memory otherwise (config.ts warns of
 * that). A database that is down at start does not stop the server: the table is created when it
 * first answers. One that refuses this configuration (a wrong password, an unknown database, a
 * missing grant, another program on its port) stops start-up with a DatabaseConfigError naming
 * the problem (startup-check.ts). Without the
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

  const hosts = databaseEndpoints(config).map(endpointName)
  // Names, not secrets: an operator reads here which database this instance uses.
  log.info({ store: 'mysql', hosts, database: config.SESSION_DATABASE, table: config.SESSION_TABLE, user: config.SESSION_USER },
    `session store: MySQL/MariaDB at ${hosts.join(',')}, database ${config.SESSION_DATABASE as string}, table ${config.SESSION_TABLE}, user ${config.SESSION_USER as string}`)
  const { pool, store } = createMysqlStore(config, { deadlineMs: STORE_DEADLINE_MS, log, observe: metricsOf(fastify)?.observeStore, sessionUser })
  fastify.decorate('sessionStore', store)
  try {
    await store.ping()
  } catch (error) {
    const diagnosis = await diagnoseStartup(error, config)
    if (diagnosis.permanent) {
      // Start-up ends with the one line, whatever closing the pool says.
      await store.close().catch(() => {})
      await pool.end().catch(() => {})
      throw new DatabaseConfigError(diagnosis.message)
    }
    log.warn({ err: error }, diagnosis.message)
  }
  const stopCleanup = scheduleCleanup(store, config.SESSION_CLEANUP_INTERVAL, log)
  fastify.addHook('onClose', async () => {
    await stopCleanup()
    await store.close()
    await pool.end()
  })
}, { name: 'session-store' })
