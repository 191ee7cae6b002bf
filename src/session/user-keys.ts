import { setTimeout as sleep } from 'node:timers/promises'
import { escapeId, type PoolConnection, type ResultSetHeader, type RowDataPacket } from 'mysql2/promise'
import { defaultSessionUser, userKeyOf, type SessionUserMapper } from './identity.js'
import { nowSeconds } from './lifetime.js'
import { parseStoredData } from './stored-data.js'

const KEYING_BATCH = 1000

/**
 * Writes user_key for live rows that have none: rows of a table just upgraded, and rows another
 * writer (an Express app sharing the table) inserted since. Read in JavaScript like every session,
 * so nothing the data holds can hide its user, and with the store's SessionUserMapper, so a migrated
 * app's session is found as its user's before anybody visits it. One UPDATE per batch; a row keyed meanwhile (by a
 * save, or another instance) is left as it is. Resolves with how many rows it keyed.
 */
export async function keyUnkeyedRows (connection: PoolConnection, table: string, signal?: AbortSignal, mapper: SessionUserMapper = defaultSessionUser): Promise<number> {
  const name = escapeId(table)
  let keyed = 0
  let after = ''
  while (!signal?.aborted) {
    const started = Date.now()
    const [rows] = await connection.query<RowDataPacket[]>(
      `SELECT session_id, data FROM ${name} WHERE user_key IS NULL AND expires > ? AND session_id > ? ORDER BY session_id LIMIT ${KEYING_BATCH}`,
      [nowSeconds(), after])
    if (rows.length === 0) return keyed
    const all = rows.map((row) => [String(row.session_id), userKeyOf(parseStoredData(row.data), mapper)] as const)
    // A user this process cannot map stays NULL, for a process that can (identity.ts).
    const keys = all.filter((entry): entry is readonly [string, string] => entry[1] !== null)
    if (keys.length > 0) {
      const [result] = await connection.query<ResultSetHeader>(
        `UPDATE ${name} SET user_key = CASE session_id ${keys.map(() => 'WHEN ? THEN ?').join(' ')} END
          WHERE session_id IN (?) AND user_key IS NULL`,
        [...keys.flat(), keys.map(([id]) => id)])
      keyed += result.affectedRows
    }
    if (rows.length < KEYING_BATCH) return keyed
    after = all[all.length - 1]![0]
    // Rest as long as the batch took, as the cleanup does: reads keep their latency meanwhile.
    await sleep(Date.now() - started, undefined, { signal }).catch(() => {})
  }
  return keyed
}
