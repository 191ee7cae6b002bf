import type { FastifyBaseLogger } from 'fastify'
import type { Pool as CorePool, PoolConnection as CoreConnection, QueryError } from 'mysql2'
import { createConnection, createPool, type Connection, type Pool, type RowDataPacket } from 'mysql2/promise'
import { databaseEndpoints, endpointName, type Config, type DatabaseEndpoint } from '../config/config.js'
import { isConflict } from './store-errors.js'

/**
 * How long any request may wait for the database before it is answered 503. The contract allows
 * 2 s in all; with 1.5 s, 215 requests held up together by a locked table were answered in up to
 * 1.91 s on 2 busy cores (load average 10), so the rest of the request gets 0.8 s here.
 */
export const STORE_DEADLINE_MS = 1200

// How long a statement may wait for a table or row lock: the server defaults are a day and 50 s. A
// statement still waiting after its request was answered 503 would hold a pooled connection, and
// could still write once the lock goes. 1 s is the least MySQL accepts.
const LOCK_WAIT_SECONDS = 1

/** How often each node of a cluster is asked whether it may serve (SESSION_HOST lists several). */
export const NODE_CHECK_INTERVAL_MS = 500

// Errors by which a node says it cannot serve now: another node can run the statement.
const NODE_STATE_ERRNOS = new Set([
  1040, // ER_CON_COUNT_ERROR: too many connections
  1047, // ER_UNKNOWN_COM_ERROR: "WSREP has not yet prepared node for application use" (not Synced, or not in the primary component)
  1053 // ER_SERVER_SHUTDOWN
])
// The connection, not the node, failed: a fresh one may succeed (or, if the node is gone, fails
// to connect, which leaves the node).
const ER_CONNECTION_KILLED = 1927

/** The statement failed because of where it ran (the node, the connection, a conflict), not what it is: once more may succeed. */
export function isRetryable (error: unknown): boolean {
  return isNodeFailure(error) || isConflict(error)
}

function isNodeFailure (error: unknown): boolean {
  const { fatal, errno } = (error ?? {}) as Partial<QueryError>
  return fatal === true || errno === ER_CONNECTION_KILLED || NODE_STATE_ERRNOS.has(errno ?? 0)
}

/**
 * One database server and its own connections. On Galera (wsrep_on) each connection's reads wait
 * until the node has applied every write the cluster committed before them (wsrep_sync_wait=1):
 * a logout answered through another node is never read back as a live session here.
 */
class DatabaseNode {
  readonly name: string
  readonly pool: Pool
  /** Whether queries may go here: answered its last check and, on Galera, Synced in the primary component. */
  usable = true
  /** Why not, for the log. */
  problem = ''
  /** Whether a check has answered yet (with several hosts). */
  checked = false
  /** wsrep_on, asked once, on whichever connection (a pooled one or the check's) comes first. */
  private wsrep: Promise<boolean> | undefined
  private readonly prepared = new WeakSet<CoreConnection>()

  constructor (readonly endpoint: DatabaseEndpoint, config: Config) {
    this.name = endpointName(endpoint)
    this.pool = createPool({
      ...connectionSettings(endpoint, config),
      connectionLimit: 10,
      maxIdle: 10,
      idleTimeout: 60000,
      queueLimit: 200,
      waitForConnections: true,
      enableKeepAlive: true
    })
  }

  /** A pooled connection whose session settings are in place (once per connection: a round trip the first time). */
  async connect (): Promise<CoreConnection> {
    const connection = await new Promise<CoreConnection>((resolve, reject) => {
      (this.pool.pool as CorePool).getConnection((error, connection) => error ? reject(error) : resolve(connection))
    })
    if (this.prepared.has(connection)) return connection
    try {
      const causal = await this.isGalera(connection.promise()) ? ', wsrep_sync_wait = 1' : ''
      await connection.promise().query(`SET SESSION lock_wait_timeout = ${LOCK_WAIT_SECONDS}, innodb_lock_wait_timeout = ${LOCK_WAIT_SECONDS}${causal}`)
    } catch (error) {
      connection.destroy()
      throw error
    }
    this.prepared.add(connection)
    return connection
  }

  /** Whether wsrep is on, asked on `connection` unless it is known or being asked already. */
  isGalera (connection: Pick<Connection, 'query'>): Promise<boolean> {
    this.wsrep ??= wsrepOn(connection).catch((error: unknown) => {
      this.wsrep = undefined
      throw error
    })
    return this.wsrep
  }

  /** The node went away: what comes back on its address may be another server. */
  forgetServer (): void {
    this.wsrep = undefined
  }
}

/** How the store connects to one server; the start-up diagnosis logs in the same way. */
export function connectionSettings (endpoint: DatabaseEndpoint, config: Config) {
  return {
    host: endpoint.host,
    port: endpoint.port,
    user: config.SESSION_USER,
    password: config.SESSION_PASSWORD,
    database: config.SESSION_DATABASE,
    charset: 'utf8mb4_bin',
    connectTimeout: 1000
  }
}

async function wsrepOn (connection: Pick<Connection, 'query'>): Promise<boolean> {
  const [rows] = await connection.query<RowDataPacket[]>("SHOW GLOBAL VARIABLES LIKE 'wsrep_on'")
  return String(rows[0]?.Value).toUpperCase() === 'ON'
}

/**
 * The store's connections: to the one server SESSION_HOST names, or to the first usable node of a
 * cluster in SESSION_HOST's order, so every instance with the same list writes through the same
 * node (no certification conflicts between them) and comes back to it once it is usable again.
 * A node is usable while it answers and, on Galera, is Synced in the primary component: each is
 * checked every NODE_CHECK_INTERVAL_MS on its own timer, and one that refuses a new connection or
 * says it is not ready is left at once, until a check finds it well. A statement that fails on
 * one connection (it was cut, it conflicted) leaves no node: the caller retries it.
 */
export class SessionPool {
  readonly nodes: DatabaseNode[]
  private readonly checker: NodeChecker | undefined

  constructor (config: Config, log?: FastifyBaseLogger, checkIntervalMs = NODE_CHECK_INTERVAL_MS) {
    this.nodes = databaseEndpoints(config).map((endpoint) => new DatabaseNode(endpoint, config))
    // One server has nobody to fail over to: its errors are the store's 503s.
    if (this.nodes.length > 1) this.checker = new NodeChecker(this.nodes, config, checkIntervalMs, log)
  }

  /** A connection to the first usable node, trying the next when one cannot be reached. */
  async getConnection (): Promise<CoreConnection> {
    let lastError: unknown
    for (const node of this.nodes) {
      // Until a node's first check has answered (at start), whether it may serve is not known.
      if (this.checker && !node.checked) await this.checker.firstChecked(node)
      if (!node.usable) continue
      try {
        return await node.connect()
      } catch (error) {
        if (!isNodeFailure(error)) throw error
        this.checker?.leave(node, describe(error))
        lastError = error
      }
    }
    throw lastError ?? new Error(`no usable database node (${this.nodes.map((node) => `${node.name}: ${node.problem}`).join('; ')})`)
  }

  /**
   * A statement on `connection` failed with `error`: leaves the node if the node says it cannot
   * serve (not ready, shutting down). Whether running the statement again, on a fresh connection
   * (to another node if this one was left), may succeed.
   */
  failed (connection: CoreConnection, error: unknown): boolean {
    const node = this.nodes.find((node) => node.endpoint.port === connection.config.port && node.endpoint.host === connection.config.host)
    if (node && NODE_STATE_ERRNOS.has((error as { errno?: number } | undefined)?.errno ?? 0)) this.checker?.leave(node, describe(error))
    return isRetryable(error)
  }

  /** Each node, `host:port`, and whether queries go there now. */
  states (): Array<{ node: string, usable: boolean }> {
    return this.nodes.map((node) => ({ node: node.name, usable: node.usable }))
  }

  /** Stops the checks and closes every connection. */
  async end (): Promise<void> {
    await this.checker?.stop()
    await Promise.all(this.nodes.map((node) => node.pool.end()))
  }
}

function describe (error: unknown): string {
  const { code, message } = (error ?? {}) as { code?: string, message?: string }
  return code ?? message ?? String(error)
}

/**
 * Asks each node, on a connection of its own and on a timer of its own (a node that hangs delays
 * no other's), whether it may serve: it answers within the check interval and, where wsrep is on,
 * wsrep_local_state is 4 (Synced), wsrep_cluster_status is Primary and wsrep_ready is ON. A node
 * that is Donor/Desynced, joining, or cut off from the primary component gets no queries.
 */
class NodeChecker {
  private readonly first = new Map<DatabaseNode, Promise<void>>()
  private readonly connections = new Map<DatabaseNode, Promise<Connection>>()
  private readonly timers = new Set<NodeJS.Timeout>()
  private readonly rounds = new Set<Promise<void>>()
  private stopped = false

  constructor (nodes: DatabaseNode[], private readonly config: Config, private readonly intervalMs: number, private readonly log?: FastifyBaseLogger) {
    for (const node of nodes) this.first.set(node, this.checkEvery(node))
  }

  /** Resolves once the node's first check has answered (or failed). */
  firstChecked (node: DatabaseNode): Promise<void> | undefined {
    return this.first.get(node)
  }

  leave (node: DatabaseNode, problem: string): void {
    this.setState(node, false, problem)
  }

  /** Checks now, then every interval after the previous check ended; resolves after the first. */
  private async checkEvery (node: DatabaseNode): Promise<void> {
    const round = this.check(node)
    this.rounds.add(round)
    await round
    this.rounds.delete(round)
    if (this.stopped) return
    const timer = setTimeout(() => {
      this.timers.delete(timer)
      this.checkEvery(node).catch(() => {})
    }, this.intervalMs)
    timer.unref()
    this.timers.add(timer)
  }

  private async check (node: DatabaseNode): Promise<void> {
    const problem = await this.problemOf(node)
    this.setState(node, problem === undefined, problem ?? '')
    node.checked = true
  }

  private setState (node: DatabaseNode, usable: boolean, problem: string): void {
    if (this.stopped || node.usable === usable) return
    node.usable = usable
    node.problem = problem
    if (usable) this.log?.info({ node: node.name }, 'database node is usable again')
    else this.log?.warn({ node: node.name, problem }, 'database node left: no queries go there until it is Synced again')
  }

  /** Undefined when the node may serve, else why not. */
  private async problemOf (node: DatabaseNode): Promise<string | undefined> {
    let connection: Connection | undefined
    try {
      connection = await this.connectionTo(node)
      const [rows] = await connection.query<RowDataPacket[]>({
        sql: "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_local_state', 'wsrep_local_state_comment', 'wsrep_cluster_status', 'wsrep_ready')",
        timeout: Math.max(this.intervalMs, 1000)
      })
      if (!(await node.isGalera(connection))) return undefined
      const status = Object.fromEntries(rows.map((row) => [String(row.Variable_name).toLowerCase(), String(row.Value)]))
      if (status.wsrep_cluster_status !== 'Primary') return `not in the primary component (${status.wsrep_cluster_status ?? 'unknown'})`
      if (status.wsrep_local_state !== '4') return `not Synced (${status.wsrep_local_state_comment ?? 'unknown'})`
      if (status.wsrep_ready !== 'ON') return 'wsrep_ready is OFF'
      return undefined
    } catch (error) {
      this.connections.delete(node)
      connection?.destroy()
      node.forgetServer()
      return describe(error)
    }
  }

  private connectionTo (node: DatabaseNode): Promise<Connection> {
    let connection = this.connections.get(node)
    if (!connection) {
      connection = createConnection(connectionSettings(node.endpoint, this.config)).then((opened) => {
        // A node that dies between checks closes this socket: the next check reconnects.
        opened.on('error', () => { if (this.connections.get(node) === connection) this.connections.delete(node) })
        return opened
      })
      // Handled where it is awaited; a rejection nobody awaits yet must not crash the process.
      connection.catch(() => {})
      this.connections.set(node, connection)
    }
    return connection
  }

  async stop (): Promise<void> {
    this.stopped = true
    for (const timer of this.timers) clearTimeout(timer)
    await Promise.all(this.rounds)
    await Promise.all([...this.connections.values()].map(async (connection) => {
      await (await connection.catch(() => undefined))?.end().catch(() => {})
    }))
  }
}
