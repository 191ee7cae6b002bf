import { escapeId, type Pool, type RowDataPacket } from 'mysql2/promise'
import { userKeyOf } from './identity.js'
import { nowSeconds } from './lifetime.js'
import { parseStoredData } from './stored-data.js'

const ER_DUP_FIELDNAME = 1060
const ER_DUP_KEYNAME = 1061
const ER_CANT_DROP_FIELD_OR_KEY = 1091

// Marks a table whose every row has its user_key written: set once the backfill of an upgraded table
// has finished, so a start interrupted half-way backfills again and a finished table never does.
const SCHEMA_MARK = 'sessions: user_key v1'
const BACKFILL_BATCH = 1000

// Who is logged in, written by the store from `session.user` on every save (identity.ts).
const USER_KEY_COLUMN = 'user_key char(43) CHARACTER SET ascii COLLATE ascii_bin NULL'

/**
 * Creates the session table, or upgrades one that express-mysql-session (or an earlier version of
 * this project) created, so both run on the same rows: its columns unchanged, plus an index on
 * `expires` for the batched cleanup and an indexed `user_key` column. Safe to run again and from
 * several processes at once: each step checks first, and a step another process has just done is
 * taken as done.
 */
export async function createOrUpgradeTable (pool: Pool, table: string): Promise<void> {
  const name = escapeId(table)
  await pool.query(`CREATE TABLE IF NOT EXISTS ${name} (
    session_id varchar(128) COLLATE utf8mb4_bin NOT NULL,
    expires int(11) unsigned NOT NULL,
    data mediumtext COLLATE utf8mb4_bin,
    ${USER_KEY_COLUMN},
    PRIMARY KEY (session_id),
    KEY idx_expires (expires),
    KEY idx_user_key (user_key)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin COMMENT=${pool.escape(SCHEMA_MARK)}`)
  if (await tableComment(pool, table) === SCHEMA_MARK) return

  if (!(await hasIndexOn(pool, table, 'expires'))) {
    await ignoreErrors([ER_DUP_KEYNAME], pool.query(`ALTER TABLE ${name} ADD INDEX idx_expires (expires)`))
  }
  // Earlier versions derived the user from the JSON with JSON_VALUE, which MariaDB answers with NULL
  // for a lone surrogate escape or deep nesting anywhere before `user`: such sessions were hidden
  // from their user's list and revocation. The column goes; user_key replaces it.
  if (await isOldUserNameColumn(pool, table)) {
    await ignoreErrors([ER_CANT_DROP_FIELD_OR_KEY], pool.query(`ALTER TABLE ${name} DROP COLUMN user_name`))
  }
  if (!(await hasColumn(pool, table, 'user_key'))) {
    await ignoreErrors([ER_DUP_FIELDNAME], pool.query(`ALTER TABLE ${name} ADD COLUMN ${USER_KEY_COLUMN}`))
  }
  if (!(await hasIndexOn(pool, table, 'user_key'))) {
    await ignoreErrors([ER_DUP_KEYNAME], pool.query(`ALTER TABLE ${name} ADD INDEX idx_user_key (user_key)`))
  }
  await backfillUserKeys(pool, table)
  await pool.query(`ALTER TABLE ${name} COMMENT = ${pool.escape(SCHEMA_MARK)}`)
}

/**
 * Writes user_key for the live rows that name a user, read in JavaScript like every session (so
 * what JSON_VALUE could not see is found). Batches walk the primary key; a row that another
 * process or a request has keyed meanwhile is left as it is.
 */
async function backfillUserKeys (pool: Pool, table: string): Promise<void> {
  const name = escapeId(table)
  let after = ''
  for (;;) {
    const [rows] = await pool.query<RowDataPacket[]>(
      `SELECT session_id, data FROM ${name}
        WHERE session_id > ? AND user_key IS NULL AND expires > ? AND data LIKE '%user%'
        ORDER BY session_id LIMIT ${BACKFILL_BATCH}`,
      [after, nowSeconds()])
    for (const row of rows) {
      const data = parseStoredData(row.data)
      const key = data ? userKeyOf(data) : null
      if (key) await pool.query(`UPDATE ${name} SET user_key = ? WHERE session_id = ? AND user_key IS NULL`, [key, row.session_id])
    }
    if (rows.length < BACKFILL_BATCH) return
    after = String(rows[rows.length - 1]?.session_id)
  }
}

async function tableComment (pool: Pool, table: string): Promise<string | undefined> {
  const [rows] = await pool.query<RowDataPacket[]>(
    'SELECT table_comment AS comment FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?', [table])
  return rows[0]?.comment as string | undefined
}

async function isOldUserNameColumn (pool: Pool, table: string): Promise<boolean> {
  const [rows] = await pool.query<RowDataPacket[]>(
    `SELECT generation_expression AS expression FROM information_schema.columns
      WHERE table_schema = DATABASE() AND table_name = ? AND column_name = 'user_name'`, [table])
  return /json_value/i.test(String(rows[0]?.expression ?? ''))
}

async function hasColumn (pool: Pool, table: string, column: string): Promise<boolean> {
  const [rows] = await pool.query<RowDataPacket[]>(
    `SELECT 1 FROM information_schema.columns
      WHERE table_schema = DATABASE() AND table_name = ? AND column_name = ? LIMIT 1`,
    [table, column])
  return rows.length > 0
}

async function hasIndexOn (pool: Pool, table: string, column: string): Promise<boolean> {
  const [rows] = await pool.query<RowDataPacket[]>(
    `SELECT 1 FROM information_schema.statistics
      WHERE table_schema = DATABASE() AND table_name = ? AND column_name = ? AND seq_in_index = 1 LIMIT 1`,
    [table, column])
  return rows.length > 0
}

/** Another instance upgrading at the same moment makes ours a no-op, not a failure. */
async function ignoreErrors (errnos: number[], work: Promise<unknown>): Promise<void> {
  try {
    await work
  } catch (error) {
    if (!errnos.includes((error as { errno?: number }).errno ?? 0)) throw error
  }
}
