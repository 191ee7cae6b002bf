import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { escapeId } from 'mysql2'

// The DDL express-mysql-session ships and runs itself (its schema.sql), so a test that starts from
// an Express app's table starts from exactly that table, not a copy of it.
const schema = readFileSync(join(dirname(createRequire(import.meta.url).resolve('express-mysql-session')), 'schema.sql'), 'utf8')

/** express-mysql-session's `CREATE TABLE`, for `table` (`name` or `database.name`). */
export function expressMysqlSessionTable (table = 'sessions'): string {
  return schema.replace('`sessions`', escapeId(table))
}
