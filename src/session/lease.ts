import { createHash, randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import { escapeId, type PoolConnection, type ResultSetHeader, type RowDataPacket } from 'mysql2/promise'
import { isConflict } from './store-errors.js'

/**
 * Where instances agree on who runs the maintenance (the expired-row cleanup, the keying of an
 * upgraded table). A row, not GET_LOCK: a Galera node's GET_LOCK is local to that node, while a
 * row is certified cluster-wide, so of two nodes claiming it at once one commit fails (a deadlock
 * error) and that instance simply does not run. On a single server it works the same.
 */
export const LEASE_TABLE = 'session_leases'

// The database's clock in ms: every instance, whatever its own clock, compares the same times.
const DATABASE_NOW_MS = 'ROUND(UNIX_TIMESTAMP(NOW(3)) * 1000)'

export const LEASE_TABLE_DDL = `CREATE TABLE IF NOT EXISTS ${escapeId(LEASE_TABLE)} (
    name varchar(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    holder varchar(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    slot bigint NOT NULL COMMENT 'start (ms since the epoch) of the interval the holder claimed',
    held_until bigint NOT NULL COMMENT 'ms since the epoch: the holder renews it or the lease is free',
    PRIMARY KEY (name)
  ) ENGINE=InnoDB`

/** What a schema or lease statement needs of a connection (a mysql2 promise connection or pool). */
export type Queryable = Pick<PoolConnection, 'query'>

/**
 * One named lease, claimed per interval: whoever claims the interval that starts at `slot` first
 * runs it, and nobody else does until the next one (and never while the holder still holds it).
 * Time is the database's clock (on Galera, each node's: keep them in sync with NTP).
 */
export class Lease {
  /** Who this process is, in the row (for an operator reading the table). */
  readonly holder = `${hostname().slice(0, 40)}:${process.pid}:${randomBytes(6).toString('hex')}`
  private readonly table = escapeId(LEASE_TABLE)

  constructor (readonly name: string, private readonly heldForMs: number) {}

  /**
   * Whether this process now holds the lease for the interval of `intervalMs` that has begun (or,
   * without one, for this moment); resolves with that interval's start, or undefined. Times are the
   * database's, so the instances' clocks need not agree; a slot further in the future than the
   * lease lasts was written by a wrong clock and is claimed over.
   */
  async claim (connection: Queryable, intervalMs?: number): Promise<number | undefined> {
    const [[clock]] = await connection.query<RowDataPacket[]>(`SELECT ${DATABASE_NOW_MS} AS now`)
    const now = Number(clock?.now)
    const slot = intervalMs ? now - (now % intervalMs) : now
    try {
      const [claimed] = await connection.query<ResultSetHeader>(
        `UPDATE ${this.table} SET holder = ?, slot = ?, held_until = ? WHERE name = ? AND (slot < ? OR slot > ?) AND held_until < ?`,
        [this.holder, slot, now + this.heldForMs, this.name, slot, now + this.heldForMs, now])
      if (claimed.affectedRows === 1) return slot
      // The first claim ever creates the row; a row that exists already is somebody's claim.
      const [created] = await connection.query<ResultSetHeader>(
        `INSERT IGNORE INTO ${this.table} (name, holder, slot, held_until) VALUES (?, ?, ?, ?)`,
        [this.name, this.holder, slot, now + this.heldForMs])
      return created.affectedRows === 1 ? slot : undefined
    } catch (error) {
      // Another node's claim of the same row certified first.
      if (isConflict(error)) return undefined
      throw error
    }
  }

  /** Extends a claim still held (a long cleanup between batches); false if it was lost. */
  async renew (connection: Queryable, slot: number): Promise<boolean> {
    const [renewed] = await connection.query<ResultSetHeader>(
      `UPDATE ${this.table} SET held_until = ${DATABASE_NOW_MS} + ? WHERE name = ? AND holder = ? AND slot = ?`,
      [this.heldForMs, this.name, this.holder, slot])
    return renewed.affectedRows === 1
  }

  /** Frees the lease for the next interval's claim (the interval itself stays claimed). */
  async release (connection: Queryable, slot: number): Promise<void> {
    await connection.query(`UPDATE ${this.table} SET held_until = 0 WHERE name = ? AND holder = ? AND slot = ?`, [this.name, this.holder, slot])
  }
}

// Rows of claimOnce, apart from the maintenance leases (which live on, one per name).
const ONCE_PREFIX = 'once:'

/**
 * Claims `key` for `forMs` across every instance on the database: true for the first claim, false
 * while that claim holds (the same key again: a replayed logout token). The key is hashed to fit
 * the name column; rows past their time are removed by forgetExpiredClaims.
 */
export async function claimOnce (connection: Queryable, key: string, forMs: number): Promise<boolean> {
  return await new Lease(onceName(key), forMs).claim(connection) !== undefined
}

/** Gives a claimOnce claim back (the work it guarded failed, and a retry must be able to claim it). */
export async function releaseOnce (connection: Queryable, key: string): Promise<void> {
  await connection.query(`DELETE FROM ${escapeId(LEASE_TABLE)} WHERE name = ?`, [onceName(key)])
}

function onceName (key: string): string {
  return ONCE_PREFIX + createHash('sha256').update(key).digest('base64url')
}

/** Removes claimOnce rows whose time has passed (the cleanup runs it). */
export async function forgetExpiredClaims (connection: Queryable): Promise<void> {
  await connection.query(`DELETE FROM ${escapeId(LEASE_TABLE)} WHERE name LIKE '${ONCE_PREFIX}%' AND held_until < ${DATABASE_NOW_MS}`)
}
