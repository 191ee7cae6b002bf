import { createPool, type Pool } from 'mysql2/promise'
import type { Config } from '../config/config.js'

/** How long any request may wait for the database before it is answered 503 (the contract's 2 s, with room to answer). */
export const STORE_DEADLINE_MS = 1500

/**
 * The one mysql2 pool the process uses (express-mysql-session is handed it, so its own pinned
 * mysql2 is never loaded). Connect time and the wait queue are bounded so an outage turns into
 * quick errors instead of a growing backlog.
 */
export function createSessionPool (config: Config): Pool {
  return createPool({
    host: config.SESSION_HOST,
    port: config.SESSION_PORT,
    user: config.SESSION_USER,
    password: config.SESSION_PASSWORD,
    database: config.SESSION_DATABASE,
    charset: 'utf8mb4_bin',
    connectionLimit: 10,
    maxIdle: 10,
    idleTimeout: 60000,
    queueLimit: 200,
    waitForConnections: true,
    connectTimeout: 1000,
    enableKeepAlive: true
  })
}
