import { escapeId, type RowDataPacket } from 'mysql2/promise'
import { providerLoginKeyOf } from './identity.js'
import { LEASE_TABLE, LEASE_TABLE_DDL, type Queryable } from './lease.js'
import { parseStoredData } from './stored-data.js'

const ER_DUP_FIELDNAME = 1060
const ER_DUP_KEYNAME = 1061

// The columns express-mysql-session's table has by default, which every query here names.
const REQUIRED_COLUMNS = ['session_id', 'expires', 'data']

// Who is logged in, written by the store from `session.user` on every save (identity.ts): '' for
// an anonymous session, NULL for a row another writer (an Express app on the same table) wrote or
// whose user this process cannot map, which the maintenance run keys (user-keys.ts) and the user's
// list checks meanwhile.
const USER_KEY_COLUMN = 'user_key char(43) CHARACTER SET ascii COLLATE ascii_bin NULL'
// The identity provider's login session a session came from (identity.ts providerLoginKey), for
// back-channel logout tokens that name only that; NULL for every other session.
const SSO_KEY_COLUMN = 'sso_key char(43) CHARACTER SET ascii COLLATE ascii_bin NULL'

/**
 * Creates the session table, or upgrades one that express-mysql-session (or an earlier version of
 * this project) created, so both run on the same rows: its columns unchanged, plus an index on
 * `expires` for the batched cleanup and indexed `user_key` and `sso_key` columns; and the
 * maintenance leases' table (lease.ts). DDL, quick whatever the table holds, but for one scan when
 * sso_key is added (keySsoSessions); existing rows' user_key is filled in the background. Safe to
 * run again and from several processes at once (on a Galera cluster too, where DDL runs in total
 * order): each step checks first, and a step another process has just done is taken as done.
 *
 * It also asks the server whether this user may read and write both tables (checkPrivileges), so
 * a missing grant stops start-up with its name (startup-check.ts) instead of failing every save.
 *
 * An earlier version's generated `user_name` column (JSON_VALUE over the data) is left in place,
 * unused, so instances of that version keep working during a rolling upgrade; drop it once none
 * runs (docs/operations.md).
 */
export async function createOrUpgradeTable (db: Queryable, table: string): Promise<void> {
  const name = escapeId(table)
  await db.query(`CREATE TABLE IF NOT EXISTS ${name} (
    session_id varchar(128) COLLATE utf8mb4_bin NOT NULL,
    expires int(11) unsigned NOT NULL,
    data mediumtext COLLATE utf8mb4_bin,
    ${USER_KEY_COLUMN},
    ${SSO_KEY_COLUMN},
    PRIMARY KEY (session_id),
    KEY idx_expires (expires),
    KEY idx_user_key (user_key),
    KEY idx_sso_key (sso_key)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`)
  await db.query(LEASE_TABLE_DDL)
  // information_schema shows a user only the columns it may use: without SELECT the table would
  // look as if it had none.
  await checkPrivileges(db, [`SELECT * FROM ${name}`, `SELECT * FROM ${escapeId(LEASE_TABLE)}`])
  const columns = await columnsOf(db, table)
  const missing = REQUIRED_COLUMNS.filter((column) => !columns.has(column))
  if (missing.length > 0) {
    // express-mysql-session's `schema.columnNames` renames them; this store's queries name them.
    throw new SessionTableError(`the session table ${table} has no column ${missing.join(', ')}: other column names than session_id, expires, data are not supported; rename them (docs/migrating-from-express.md)`)
  }
  if (!(await hasIndexOn(db, table, 'expires'))) {
    await ignoreError(ER_DUP_KEYNAME, db.query(`ALTER TABLE ${name} ADD INDEX idx_expires (expires)`))
  }
  if (!columns.has('user_key')) {
    await ignoreError(ER_DUP_FIELDNAME, db.query(`ALTER TABLE ${name} ADD COLUMN ${USER_KEY_COLUMN}`))
  }
  if (!(await hasIndexOn(db, table, 'user_key'))) {
    await ignoreError(ER_DUP_KEYNAME, db.query(`ALTER TABLE ${name} ADD INDEX idx_user_key (user_key)`))
  }
  if (!columns.has('sso_key')) {
    if (await ignoreError(ER_DUP_FIELDNAME, db.query(`ALTER TABLE ${name} ADD COLUMN ${SSO_KEY_COLUMN}`))) await keySsoSessions(db, name)
  }
  if (!(await hasIndexOn(db, table, 'sso_key'))) {
    await ignoreError(ER_DUP_KEYNAME, db.query(`ALTER TABLE ${name} ADD INDEX idx_sso_key (sso_key)`))
  }
  const leases = escapeId(LEASE_TABLE)
  await checkPrivileges(db, [
    `INSERT INTO ${name} (session_id, expires, data, user_key, sso_key) VALUES (?, ?, ?, ?, ?)`,
    `UPDATE ${name} SET expires = ?, data = ?, user_key = ?, sso_key = ? WHERE session_id = ?`,
    `DELETE FROM ${name} WHERE session_id = ?`,
    `INSERT INTO ${leases} (name, holder, slot, held_until) VALUES (?, ?, ?, ?)`,
    `UPDATE ${leases} SET held_until = ? WHERE name = ?`,
    `DELETE FROM ${leases} WHERE name = ?`
  ])
}

/** A table this store cannot use as it is: a configuration error, which no retry cures. */
export class SessionTableError extends Error {
  override name = 'SessionTableError'
}

/**
 * The privileges the store needs on its database: these statements, and CREATE and ALTER for the
 * tables' creation and upgrade (ALTER TABLE … ADD INDEX needs no INDEX privilege). Checked at
 * start by running it as a user with exactly this grant (test/startup-database-errors.test.ts).
 */
export const REQUIRED_PRIVILEGES = 'SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER'

/**
 * Whether this user may run each statement, asked of the server without running it: PREPARE
 * checks the statement's privileges (ER_TABLEACCESS_DENIED_ERROR) and executes nothing, so no row
 * is touched and nothing is replicated or logged.
 */
async function checkPrivileges (db: Queryable, statements: string[]): Promise<void> {
  try {
    for (const sql of statements) await db.query('PREPARE session_store_privilege_check FROM ?', [sql])
  } finally {
    await db.query('DEALLOCATE PREPARE session_store_privilege_check').catch(() => {})
  }
}

async function columnsOf (db: Queryable, table: string): Promise<Set<string>> {
  const [rows] = await db.query<RowDataPacket[]>(
    `SELECT column_name AS name FROM information_schema.columns
      WHERE table_schema = DATABASE() AND table_name = ?`,
    [table])
  return new Set(rows.map((row) => String(row.name)))
}

async function hasIndexOn (db: Queryable, table: string, column: string): Promise<boolean> {
  const [rows] = await db.query<RowDataPacket[]>(
    `SELECT 1 FROM information_schema.statistics
      WHERE table_schema = DATABASE() AND table_name = ? AND column_name = ? AND seq_in_index = 1 LIMIT 1`,
    [table, column])
  return rows.length > 0
}

/** Another instance upgrading at the same moment makes ours a no-op, not a failure; true when ours did it. */
async function ignoreError (errno: number, work: Promise<unknown>): Promise<boolean> {
  try {
    await work
    return true
  } catch (error) {
    if ((error as { errno?: number }).errno !== errno) throw error
    return false
  }
}

/**
 * Keys the single sign-on sessions an earlier version stored before the sso_key column existed, so
 * a logout token naming only their provider login finds them: once, by the instance that added the
 * column (a scan of the rows whose text mentions a sid; sessions without SSO have none).
 */
async function keySsoSessions (db: Queryable, name: string): Promise<void> {
  const [rows] = await db.query<RowDataPacket[]>(`SELECT session_id, data FROM ${name} WHERE data LIKE '%"sid"%'`)
  for (const row of rows) {
    const data = parseStoredData(row.data)
    const key = data ? providerLoginKeyOf(data) : null
    if (key !== null) await db.query(`UPDATE ${name} SET sso_key = ? WHERE session_id = ? AND sso_key IS NULL`, [key, row.session_id])
  }
}
