import { createHash } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { SessionData } from 'express-session'
import type { ExecuteValues, PoolConnection as CoreConnection } from 'mysql2'
import { escapeId, type PoolConnection, type ResultSetHeader, type RowDataPacket } from 'mysql2/promise'
import type { FastifyBaseLogger } from 'fastify'
import { lifetimePolicy, type Config } from '../config/config.js'
import { claimOnce, forgetExpiredClaims, Lease, releaseOnce } from './lease.js'
import { SessionPool } from './mysql-pool.js'
import { providerLoginKey, providerLoginKeyOf, userKey, userKeyOf, type SessionUserMapper } from './identity.js'
import { isLive, isPastAbsoluteTimeout, isUnchangedSince, nowSeconds, storedExpiresSeconds, touchIsDue, type LifetimePolicy } from './lifetime.js'
import { PromiseSessionStore, SessionEndedError, SessionRejectedError, type CleanupOptions, type ManagedStore, type StoredSession } from './managed-store.js'
import { loadedText, markLoaded, markPersisted, persistedExpiry, sessionContent } from './persisted.js'
import type { SessionUser } from './session-data.js'
import { adoptStoredTokens, holdsReadTokens } from './sso-tokens.js'
import { parseStoredData, sessionFingerprint, sessionShapeProblem } from './stored-data.js'
import { isConflict, scrubDatabaseError, withDeadline } from './store-errors.js'
import { createOrUpgradeTable } from './table.js'
import { keyUnkeyedRows } from './user-keys.js'

const CLEANUP_BATCH = 2000
const CLEANUP_QUERY_TIMEOUT_MS = 30000
// How long a maintenance lease outlives its holder's last renewal (one per cleanup batch).
const LEASE_MS = 60000

export interface MysqlSessionStoreOptions {
  pool: SessionPool
  /** Used for the cleanup lease's name, so instances on other databases do not wait on each other. */
  database: string
  table: string
  lifetime: LifetimePolicy
  /** No request waits longer than this for the database. */
  deadlineMs: number
  log: FastifyBaseLogger
  /** Told of every database operation the store runs: its name, how long it took, whether it failed. */
  observe?: StoreObserver
  /** Finds the user in stored data of another shape than the project's (a migrated app's sessions); see identity.ts. */
  sessionUser?: SessionUserMapper
  /**
   * Whether this process writes user keys for rows it did not save (repairs, background keying);
   * default true. False for a process that may lack the servers' SessionUserMapper (the CLI): it
   * would key a migrated user's session as anonymous, hiding it from that user's revocations.
   */
  keysRows?: boolean
}

export type StoreObserver = (operation: string, seconds: number, failed: boolean) => void

/** The store the configuration describes (SESSION_HOST set), on a pool of its own that the caller ends. */
export function createMysqlStore (config: Config, options: Pick<MysqlSessionStoreOptions, 'deadlineMs' | 'log' | 'observe' | 'sessionUser' | 'keysRows'>): { pool: SessionPool, store: MysqlSessionStore } {
  const pool = new SessionPool(config, options.log)
  const store = new MysqlSessionStore({
    pool,
    database: config.SESSION_DATABASE as string,
    table: config.SESSION_TABLE,
    lifetime: lifetimePolicy(config),
    ...options
  })
  return { pool, store }
}

/**
 * The lease under which one instance per interval cleans a table (lease.ts), and the one under
 * which one instance keys an upgraded table at start; 56 characters of the lease table's 64.
 */
export function maintenanceLeaseName (work: 'cleanup' | 'keying', database: string, table: string): string {
  return `session-${work}:` + createHash('sha256').update(`${database}.${table}`).digest('hex').slice(0, 40)
}

// user_key and sso_key, in the order the statements name them.
type RowKeys = [string | null, string | null]

interface SessionRow extends RowDataPacket {
  session_id: string
  /** Text, or an object when the column is of JSON type (mysql2 parses those). */
  data: unknown
  expires: number
  /** '' for an anonymous session, NULL for a row another writer wrote or a user not mapped (see table.ts). */
  user_key: string | null
}

/**
 * An express-session store on express-mysql-session's table (its three columns keep their meaning,
 * so an Express app can share the table), on the project's own mysql2 pool, with what that store
 * lacks:
 * - every query has a deadline, so an outage is a quick StoreUnavailableError, never a hang;
 * - a save of a session that came from the store only updates, so a slow request finishing after
 *   logout cannot insert the deleted row again (express-mysql-session upserts);
 * - touch writes only when the stored expiry lags by more than `touchAfterMs`, and never inserts;
 * - the user column is written from `session.user` on every save, so every session of a user is
 *   found, whatever else it holds;
 * - text, BLOB and JSON `data` columns all read back; a row that is no session is a fresh session
 *   and a warning, and is left for the cleanup, never deleted for its content;
 * - cleanup deletes in batches through the `expires` index, one instance at a time, and never
 *   throws into a timer.
 * The table is created or upgraded on first use, so a database that is down at start is picked up
 * when it comes back.
 */
export class MysqlSessionStore extends PromiseSessionStore implements ManagedStore {
  private readonly pool: SessionPool
  private readonly log: FastifyBaseLogger
  private readonly settings: MysqlSessionStoreOptions
  private readonly sql: Record<'select' | 'upsert' | 'update' | 'rewrite' | 'touch' | 'destroy' | 'destroyMany' | 'destroyOfProviderLogin' | 'repairUserKey' | 'cleanup' | 'live' | 'ofUser' | 'endOfUser' | 'countLive' | 'clear', string>
  private readonly cleanupLease: Lease
  private readonly keyingLease: Lease
  private schemaReady: Promise<void> | undefined
  private readonly closing = new AbortController()
  private startupKeying: Promise<unknown> | undefined
  private readonly keysRows: boolean

  constructor (settings: MysqlSessionStoreOptions) {
    super(settings.sessionUser)
    this.pool = settings.pool
    this.keysRows = settings.keysRows !== false
    this.log = settings.log
    this.settings = settings
    const table = escapeId(settings.table)
    // Every "is it live" is `expires > nowSeconds()`, the comparison isLive() makes for a read.
    this.sql = {
      select: `SELECT data, expires, user_key FROM ${table} WHERE session_id = ?`,
      upsert: `INSERT INTO ${table} (session_id, expires, data, user_key, sso_key) VALUES (?, ?, ?, ?, ?)
               ON DUPLICATE KEY UPDATE expires = VALUES(expires), data = VALUES(data), user_key = VALUES(user_key), sso_key = VALUES(sso_key)`,
      update: `UPDATE ${table} SET expires = ?, data = ?, user_key = ?, sso_key = ? WHERE session_id = ?`,
      rewrite: `UPDATE ${table} SET expires = ?, data = ?, user_key = ?, sso_key = ? WHERE session_id = ? AND data = ?`,
      touch: `UPDATE ${table} SET expires = ? WHERE session_id = ?`,
      destroy: `DELETE FROM ${table} WHERE session_id = ?`,
      repairUserKey: `UPDATE ${table} SET user_key = ? WHERE session_id = ? AND user_key <=> ?`,
      cleanup: `DELETE FROM ${table} WHERE expires <= ? LIMIT ${CLEANUP_BATCH}`,
      live: `SELECT session_id, data, expires FROM ${table} WHERE expires > ?`,
      // Both through idx_user_key (ref_or_null): the user's rows, and rows no one has keyed yet.
      ofUser: `SELECT session_id, data, expires, user_key FROM ${table} WHERE (user_key = ? OR user_key IS NULL) AND expires > ?`,
      endOfUser: `SELECT session_id, data, expires, user_key FROM ${table} WHERE (user_key = ? OR user_key IS NULL) AND session_id <> ?`,
      destroyMany: `DELETE FROM ${table} WHERE session_id IN (?)`,
      destroyOfProviderLogin: `DELETE FROM ${table} WHERE sso_key = ?`,
      // A range over idx_expires.
      countLive: `SELECT COUNT(*) AS n FROM ${table} WHERE expires > ?`,
      clear: `DELETE FROM ${table}`
    }
    this.cleanupLease = new Lease(maintenanceLeaseName('cleanup', settings.database, settings.table), LEASE_MS)
    this.keyingLease = new Lease(maintenanceLeaseName('keying', settings.database, settings.table), LEASE_MS)
  }

  /**
   * Creates or upgrades the table once; after a failure the next operation tries again. Rows that
   * have no user key yet (an upgraded table's) are keyed in the background meanwhile.
   */
  prepare (): Promise<void> {
    this.schemaReady ??= this.onConnection((connection) => createOrUpgradeTable(connection, this.settings.table)).then(() => {
      if (!this.keysRows) return
      this.startupKeying = this.keyUnkeyedSessions().catch((error: unknown) => {
        this.log.warn({ err: scrubDatabaseError(error) }, 'could not key existing sessions by user; the next cleanup tries again')
      })
    }, (error: unknown) => {
      this.schemaReady = undefined
      throw error
    })
    return this.schemaReady
  }

  /** Stops background work (the keying of an upgraded table) before the pool is ended. */
  async close (): Promise<void> {
    this.closing.abort()
    await this.startupKeying
  }

  databaseNodes (): Array<{ node: string, usable: boolean }> {
    return this.pool.states()
  }

  /** A protocol-level COM_PING: it proves the server answers without running a statement. */
  async ping (deadlineMs = this.settings.deadlineMs): Promise<void> {
    await this.run('ping', (connection) => new Promise<void>((resolve, reject) => {
      connection.ping((error) => error ? reject(error) : resolve())
    }), deadlineMs)
  }

  protected async removeAll (): Promise<void> {
    await this.run('clear', (connection) => statement(connection, 'query', this.sql.clear))
  }

  /**
   * Removes expired rows in batches, then keys rows another writer left without a user key, on one
   * instance per interval (`options.intervalMs`; without it, one at a time). Resolves with how many
   * rows went (0 when another instance has the interval, or is still cleaning).
   */
  async cleanupExpired (options: CleanupOptions = {}): Promise<number> {
    const signal = options.signal ? AbortSignal.any([options.signal, this.closing.signal]) : this.closing.signal
    const removed = await this.withLease(this.cleanupLease, options.intervalMs, async (connection, stillHeld) => {
      const removed = await this.deleteExpired(connection, signal, stillHeld)
      await this.timed('claim once', () => forgetExpiredClaims(connection))
      if (!signal.aborted && this.keysRows) await this.timed('key users', () => keyUnkeyedRows(connection, this.settings.table, signal, this.mapper))
      return removed
    })
    return removed ?? 0
  }

  /** Keys the rows that have no user key (see user-keys.ts), unless another instance is maintaining the table. */
  private async keyUnkeyedSessions (): Promise<number> {
    const keyed = await this.withLease(this.keyingLease, undefined, (connection) => this.timed('key users', () => keyUnkeyedRows(connection, this.settings.table, this.closing.signal, this.mapper)))
    if (keyed) this.log.info({ keyed }, 'keyed existing sessions by user')
    return keyed ?? 0
  }

  /**
   * Runs `work` under `lease`, for the interval of `intervalMs` that has begun (or for this moment,
   * without one), on a connection of its own; undefined when another instance has it. `stillHeld`
   * renews the lease, for work that goes on for longer.
   */
  private async withLease<T> (lease: Lease, intervalMs: number | undefined, work: (connection: PoolConnection, stillHeld: () => Promise<boolean>) => Promise<T>): Promise<T | undefined> {
    await this.prepare()
    return await this.onConnection(async (connection) => {
      const slot = await this.timed('cleanup lease', () => lease.claim(connection, intervalMs))
      if (slot === undefined) return undefined
      this.log.debug({ lease: lease.name, slot: new Date(slot).toISOString() }, 'maintenance lease claimed')
      try {
        return await work(connection, () => this.timed('cleanup lease', () => lease.renew(connection, slot)))
      } finally {
        await this.timed('cleanup lease', () => lease.release(connection, slot)).catch((error: unknown) => {
          this.log.warn({ err: scrubDatabaseError(error) }, 'could not release a maintenance lease; it expires by itself')
        })
      }
    })
  }

  /** Runs `work` on a connection of its own (maintenance, schema), got within the request deadline. */
  private async onConnection<T> (work: (connection: PoolConnection) => Promise<T>): Promise<T> {
    const connection = await withDeadline('maintenance connection', this.settings.deadlineMs, async (deadline) => {
      const connection = await this.pool.getConnection()
      // Nobody waits for a connection that comes after the deadline: hand it back, or it is lost to the pool.
      if (deadline.passed) connection.release()
      return connection
    })
    try {
      return await work(connection.promise())
    } catch (error) {
      this.pool.failed(connection, error)
      throw error
    } finally {
      connection.release()
    }
  }

  private async deleteExpired (connection: PoolConnection, signal: AbortSignal, stillHeld: () => Promise<boolean>): Promise<number> {
    let removed = 0
    for (;;) {
      // Applies to the next statement only. At the default REPEATABLE READ a batch that walks the
      // table (the optimizer's choice when most rows are expired) locks the gaps between live
      // rows too, and a new session whose id falls there waits for the whole batch.
      const batchStarted = Date.now()
      const [result] = await this.timed('cleanup', async () => {
        await connection.query('SET TRANSACTION ISOLATION LEVEL READ COMMITTED')
        return await connection.query<ResultSetHeader>({
          sql: this.sql.cleanup,
          values: [nowSeconds()],
          timeout: CLEANUP_QUERY_TIMEOUT_MS
        })
      })
      removed += result.affectedRows
      if (result.affectedRows < CLEANUP_BATCH || signal.aborted) return removed
      // Rest as long as the batch took: the cleanup gets at most half of one database thread, so
      // reads keep their latency while a million expired rows go (docs/benchmarks.md).
      await sleep(Date.now() - batchStarted, undefined, { signal }).catch(() => {})
      if (signal.aborted || !(await stillHeld())) return removed
    }
  }

  /**
   * A request waits for a claim as for any query: within the deadline, or a StoreUnavailableError
   * (503). A claim that went through after its request stopped waiting is given back, so the retry
   * of what it guarded (the provider sends a logout token again) is not taken for a replay. Not
   * retried as run() retries: a claim whose connection was cut may have been taken, and taking it
   * again would look like somebody else's.
   */
  async claimOnce (key: string, forMs: number): Promise<boolean> {
    await this.prepare()
    return await this.timed('claim once', () => withDeadline('claim once', this.settings.deadlineMs, async (deadline) => {
      return await this.onConnection(async (connection) => {
        const claimed = await claimOnce(connection, key, forMs)
        // On the same connection: another one might not come before a second deadline.
        if (claimed && deadline.passed) {
          await releaseOnce(connection, key).catch((error: unknown) => {
            this.log.warn({ err: scrubDatabaseError(error) }, 'a claim taken after its request gave up could not be given back; it lapses by itself')
          })
        }
        return claimed
      })
    }))
  }

  async releaseOnce (key: string): Promise<void> {
    await this.timed('claim once', () => withDeadline('claim once', this.settings.deadlineMs, () => this.onConnection((connection) => releaseOnce(connection, key))))
  }

  async countLive (): Promise<number> {
    const [rows] = await this.run('count', (connection) => statement<RowDataPacket[]>(connection, 'execute', this.sql.countLive, [nowSeconds()]))
    return Number(rows[0]?.n)
  }

  /**
   * The user's live sessions: rows keyed to the user, and rows no one has keyed yet, each checked
   * against the user its data names (the data is what a request would use). A row whose key and
   * data disagree, or that has no key, is keyed from its data meanwhile.
   */
  async sessionsOf (user: SessionUser): Promise<StoredSession[]> {
    const now = Date.now()
    const key = userKey(user)
    // On the connection run() holds: taking a second one from the pool while holding the first
    // deadlocks the pool once ten of these run at once.
    const [rows] = await this.run('list', (connection) => statement<SessionRow[]>(connection, 'execute', this.sql.ofUser, [key, nowSeconds(now)]))
    return this.usableRowsOf(rows, key).flatMap(({ row, data }) => {
      if (isPastAbsoluteTimeout(data, this.settings.lifetime, now)) return []
      return [{ id: row.session_id, data, expiresAt: row.expires * 1000 }]
    })
  }

  async endSessionsOf (user: SessionUser, keepId = ''): Promise<number> {
    const key = userKey(user)
    return await this.run('end sessions', async (connection) => {
      const [rows] = await statement<SessionRow[]>(connection, 'execute', this.sql.endOfUser, [key, keepId])
      const ids = this.usableRowsOf(rows, key).map(({ row }) => row.session_id)
      if (ids.length === 0) return 0
      const [result] = await statement<ResultSetHeader>(connection, 'query', this.sql.destroyMany, [ids])
      return result.affectedRows
    })
  }

  async endSessionsOfProviderLogin (issuer: string, sid: string): Promise<number> {
    const [result] = await this.run('end sessions', (connection) => statement<ResultSetHeader>(connection, 'execute', this.sql.destroyOfProviderLogin, [providerLoginKey(issuer, sid)]))
    return result.affectedRows
  }

  /** The rows a request could use as a session of the user with this key; repairs the keys of the others it read. */
  private usableRowsOf (rows: SessionRow[], key: string): Array<{ row: SessionRow, data: SessionData }> {
    return rows.flatMap((row) => {
      const data = parseStoredData(row.data)
      const dataKey = userKeyOf(data, this.mapper)
      if (dataKey !== row.user_key) this.repairUserKey(row.session_id, row.user_key, dataKey)
      if (!data || dataKey !== key || sessionShapeProblem(data) !== undefined) return []
      return [{ row, data: data as unknown as SessionData }]
    })
  }

  /**
   * What `set` stored, exactly: any JSON object (express-session's own sessions, or a caller's plain
   * data). Whether it can serve as this project's session is for the caller to check (the bridge
   * does, with sessionShapeProblem).
   */
  protected async read (sid: string): Promise<SessionData | null> {
    const [rows] = await this.run('read', (connection) => statement<SessionRow[]>(connection, 'execute', this.sql.select, [sid]))
    const row = rows[0]
    // Both timeouts come from stored values, whatever the client's cookie claims: the idle one
    // is the row's expiry, the absolute one counts from the stored creation (login) time.
    if (!row || !isLive(row.expires)) return null
    const data = parseStoredData(row.data)
    if (!data) {
      // Left for the cleanup: a row this process cannot read may be one another app can (a migration).
      this.log.warn({ session: sessionFingerprint(sid) }, 'a session row holds no readable JSON object; the client gets a fresh session')
      return null
    }
    if (isPastAbsoluteTimeout(data, this.settings.lifetime)) {
      this.forget(sid)
      return null
    }
    const key = userKeyOf(data, this.mapper)
    if (key !== row.user_key) this.repairUserKey(sid, row.user_key, key)
    markPersisted(data, sid, row.expires)
    markLoaded(data, sid, textOf(row.data))
    return data as unknown as SessionData
  }

  /**
   * A row whose user_key does not match its data was written by something other than this store
   * (an Express app on the same table, a hand edit): key it, so its user's list and revocations
   * find it by the index. Costs a query only for such rows, and nobody waits for it; it changes
   * nothing if a save rewrote the key meanwhile.
   */
  private repairUserKey (sid: string, found: string | null, key: string | null): void {
    if (!this.keysRows) return
    this.run('repair user key', (connection) => statement(connection, 'execute', this.sql.repairUserKey, [key, sid, found]))
      .catch((error: unknown) => { this.log.warn({ err: error }, 'could not repair a session\'s user key; the next cleanup does') })
  }

  protected async liveSessions (): Promise<Record<string, SessionData>> {
    const now = Date.now()
    const [rows] = await this.run('all', (connection) => statement<SessionRow[]>(connection, 'execute', this.sql.live, [nowSeconds(now)]))
    const sessions: Record<string, SessionData> = {}
    for (const row of rows) {
      const data = parseStoredData(row.data)
      if (data && !isPastAbsoluteTimeout(data, this.settings.lifetime, now)) sessions[row.session_id] = data as unknown as SessionData
    }
    return sessions
  }

  /** Deletes a row this request will not use; if that fails, the cleanup job removes it later. */
  private forget (sid: string): void {
    this.remove(sid).catch(() => {})
  }

  protected async write (sid: string, session: SessionData): Promise<void> {
    const policy = this.settings.lifetime
    if (isUnchangedSince(sid, session, policy)) return
    const expires = storedExpiresSeconds(session, policy)
    const keys = this.keysOf(session)
    let data = JSON.stringify(session)
    if (persistedExpiry(session, sid) === undefined) {
      await refusedData(this.run('insert', (connection) => statement(connection, 'execute', this.sql.upsert, [sid, expires, data, ...keys])))
    } else {
      // A data column of MySQL's JSON type is not read as text, and cannot be compared with it: there
      // the last save wins, as in express-session.
      const read = loadedText(session, sid)
      const written = read !== undefined && holdsReadTokens(session, read)
        ? await this.updateKeepingTokens(sid, session, read, expires)
        : await this.update(sid, expires, data, keys)
      if (written === undefined) {
        this.log.info({ session: sessionFingerprint(sid) }, 'session ended while this request ran; not writing it back')
        throw new SessionEndedError()
      }
      data = written
    }
    markPersisted(session, sid, expires, sessionContent(session))
    markLoaded(session, sid, data)
  }

  /** The indexed columns a save writes from the data: who is logged in, and through which provider login. */
  private keysOf (session: SessionData): RowKeys {
    return [userKeyOf(session, this.mapper), providerLoginKeyOf(session)]
  }

  /** The text written, or undefined when the row is gone. */
  private async update (sid: string, expires: number, data: string, keys: RowKeys): Promise<string | undefined> {
    const [result] = await refusedData(this.run('update', (connection) => statement<ResultSetHeader>(connection, 'execute', this.sql.update, [expires, data, ...keys, sid])))
    return result.affectedRows > 0 ? data : undefined
  }

  /**
   * Writes a session whose SSO tokens this request did not change over the text it read only;
   * when the row changed meanwhile, its tokens (a refresh saved by another request) replace the
   * ones this request holds and the write is tried again (sso-tokens.ts). The text written, or
   * undefined when the row is gone.
   */
  private async updateKeepingTokens (sid: string, session: SessionData, read: string, expires: number): Promise<string | undefined> {
    let expected = read
    for (let attempt = 1; attempt <= 3; attempt++) {
      const data = JSON.stringify(session)
      const keys = this.keysOf(session)
      const [result] = await refusedData(this.run('update', (connection) => statement<ResultSetHeader>(connection, 'execute', this.sql.rewrite, [expires, data, ...keys, sid, expected])))
      if (result.affectedRows > 0) return data
      const [rows] = await this.run('read', (connection) => statement<SessionRow[]>(connection, 'execute', this.sql.select, [sid]))
      const row = rows[0]
      if (!row) return undefined
      const current = textOf(row.data)
      if (current === undefined) break
      adoptStoredTokens(session, current)
      expected = current
    }
    // The row keeps changing (or holds MySQL's JSON type): the last tokens seen are written as they are.
    return await this.update(sid, expires, JSON.stringify(session), this.keysOf(session))
  }

  async rewriteUnchanged (sid: string, session: SessionData): Promise<void> {
    const read = loadedText(session, sid)
    if (read === undefined) return
    const policy = this.settings.lifetime
    const expires = storedExpiresSeconds(session, policy)
    const data = JSON.stringify(session)
    try {
      const [result] = await this.run('rewrite', (connection) => statement<ResultSetHeader>(connection, 'execute', this.sql.rewrite, [expires, data, ...this.keysOf(session), sid, read]))
      if (result.affectedRows > 0) markPersisted(session, sid, expires, sessionContent(session))
    } catch (error) {
      this.log.warn({ err: error }, 'could not rewrite a session with its configured cookie attributes')
    }
  }

  /** Best effort: it runs after the response is on its way, so a failure is logged, not thrown. */
  protected async lazyTouch (sid: string, session: SessionData): Promise<void> {
    const policy = this.settings.lifetime
    if (!touchIsDue(sid, session, policy)) return
    const expires = storedExpiresSeconds(session, policy)
    try {
      const [result] = await this.run('touch', (connection) => statement<ResultSetHeader>(connection, 'execute', this.sql.touch, [expires, sid]))
      // Only a row that exists is now known to the store: touching one never stored creates nothing.
      if (result.affectedRows > 0) markPersisted(session, sid, expires)
    } catch (error) {
      this.log.warn({ err: error }, 'could not extend a session expiry')
    }
  }

  protected async remove (sid: string): Promise<void> {
    await this.run('destroy', (connection) => statement(connection, 'execute', this.sql.destroy, [sid]))
  }

  /**
   * Runs `work` on a pooled connection within the deadline. Work that gets its connection only after
   * the deadline is dropped: its request was answered 503, and running it then would, for example,
   * store a session for a client that got no cookie (a stalled database would otherwise replay the
   * whole pool queue when it comes back).
   */
  private run<T> (operation: string, work: (connection: CoreConnection) => Promise<T>, deadlineMs = this.settings.deadlineMs): Promise<T> {
    return this.timed(operation, () => withDeadline(operation, deadlineMs, async (deadline) => {
      await this.prepare()
      for (let attempt = 1; ; attempt++) {
        const connection = await this.pool.getConnection()
        try {
          if (deadline.passed) throw new Error('the request stopped waiting')
          return await work(connection)
        } catch (error) {
          // Once more, on a fresh connection (another node if this one failed), for a failure of
          // where it ran: a certification conflict or a node that went away. Every statement
          // here may run twice: each writes the same values, or deletes, whatever ran before.
          // But an insert whose connection was cut may still commit after its retry, and after a
          // logout in between: it is retried only when the database says it did nothing.
          const retryable = this.pool.failed(connection, error) && (operation !== 'insert' || isConflict(error))
          if (!retryable || attempt === 2 || deadline.passed) throw error
          this.log.debug({ operation, err: scrubDatabaseError(error) }, 'retrying a database operation once')
        } finally {
          connection.release()
        }
      }
    }))
  }

  /** Every database operation goes through here, so the observer (the metrics) sees them all. */
  private async timed<T> (operation: string, work: () => Promise<T>): Promise<T> {
    const observe = this.settings.observe
    if (!observe) return await work()
    const started = process.hrtime.bigint()
    const seconds = () => Number(process.hrtime.bigint() - started) / 1e9
    try {
      const result = await work()
      observe(operation, seconds(), false)
      return result
    } catch (error) {
      observe(operation, seconds(), true)
      throw error
    }
  }
}

// A JSON column's CHECK (MariaDB: ER_CONSTRAINT_FAILED) or type (MySQL: ER_INVALID_JSON_TEXT) refusing the data.
const DATA_REFUSED = new Set([4025, 3140])

/** A write the database refused for its data is the client's 400, not the store's 503. */
async function refusedData<T> (write: Promise<T>): Promise<T> {
  try {
    return await write
  } catch (error) {
    let cause: unknown = error
    while (cause instanceof Error) {
      if (DATA_REFUSED.has((cause as { errno?: number }).errno ?? 0)) throw new SessionRejectedError()
      cause = cause.cause
    }
    throw error
  }
}

// The hot path uses mysql2's callback API: its promise wrapper captures a stack trace on every call,
// which was 2% of a session read's CPU time (docs/benchmarks.md).

function statement<T = unknown> (connection: CoreConnection, kind: 'query' | 'execute', sql: string, values: unknown[] = []): Promise<[T, unknown]> {
  return new Promise((resolve, reject) => {
    const done = (error: Error | null, result: unknown, fields: unknown) => error ? reject(error) : resolve([result as T, fields])
    if (kind === 'execute') connection.execute(sql, values as ExecuteValues[], done)
    else connection.query(sql, values, done)
  })
}

/**
 * The data column's value as the text a statement can compare it with (`data = ?`): a text column's
 * string, a BLOB's bytes as UTF-8 (compared byte for byte); undefined for MySQL's JSON type, which
 * mysql2 hands over parsed.
 */
function textOf (data: unknown): string | undefined {
  if (typeof data === 'string') return data
  return Buffer.isBuffer(data) ? data.toString('utf8') : undefined
}
