import { escapeId, type Pool, type RowDataPacket } from 'mysql2/promise'

const ER_DUP_KEYNAME = 1061

const ER_DUP_FIELDNAME = 1060

// The logged-in user's name, derived from the JSON so express-session's writes keep it current;
// indexed so "this user's sessions" is a lookup, not a scan. JSON_VALUE yields NULL for anonymous
// sessions and for rows that are not JSON (MariaDB 10.2.3+, MySQL 8.0.21+).
const USER_NAME_COLUMN = "user_name varchar(255) COLLATE utf8mb4_bin AS (JSON_VALUE(data, '$.user.name')) VIRTUAL"

/**
 * Creates the session table, or upgrades one that express-mysql-session created, so both run on
 * the same rows: its columns unchanged, plus an index on `expires` for the batched cleanup and an
 * indexed generated `user_name` column. Safe to run again and from several processes at once.
 */
export async function createOrUpgradeTable (pool: Pool, table: string): Promise<void> {
  const name = escapeId(table)
  await pool.query(`CREATE TABLE IF NOT EXISTS ${name} (
    session_id varchar(128) COLLATE utf8mb4_bin NOT NULL,
    expires int(11) unsigned NOT NULL,
    data mediumtext COLLATE utf8mb4_bin,
    ${USER_NAME_COLUMN},
    PRIMARY KEY (session_id),
    KEY idx_expires (expires),
    KEY idx_user_name (user_name)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`)
  if (!(await hasIndexOn(pool, table, 'expires'))) {
    await ignoreError(ER_DUP_KEYNAME, pool.query(`ALTER TABLE ${name} ADD INDEX idx_expires (expires)`))
  }
  if (!(await hasColumn(pool, table, 'user_name'))) {
    await ignoreError(ER_DUP_FIELDNAME, pool.query(`ALTER TABLE ${name} ADD COLUMN ${USER_NAME_COLUMN}`))
  }
  if (!(await hasIndexOn(pool, table, 'user_name'))) {
    await ignoreError(ER_DUP_KEYNAME, pool.query(`ALTER TABLE ${name} ADD INDEX idx_user_name (user_name)`))
  }
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
async function ignoreError (errno: number, work: Promise<unknown>): Promise<void> {
  try {
    await work
  } catch (error) {
    if ((error as { errno?: number }).errno !== errno) throw error
  }
}
