import type { RowDataPacket } from 'mysql2/promise'
import t from 'tap'
import { build, countRows, listen, serve, sessionCookie, type TestDatabase } from './helper.js'
import { sessionIdOf } from './support/signed-cookie.js'
import { sendAll } from './support/traffic.js'

async function storedExpiry (db: TestDatabase): Promise<number> {
  const [rows] = await db.pool.query<RowDataPacket[]>('SELECT expires FROM sessions')
  return Number(rows[0]?.expires)
}

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'

// The ids come from express-session's uid-safe whatever the store; the in-memory store keeps
// 10,000 requests fast, and the database would only add time.
t.test('10,000 cookieless requests give 10,000 distinct 192-bit ids, evenly spread', async (t) => {
  const app = await build(t, { SESSION_HOST: undefined })
  const answers = await sendAll(await listen(app), Array.from({ length: 10000 }, () => ({})), 16)
  const ids = answers.map((res) => sessionIdOf(sessionCookie(res.headers['set-cookie'])) ?? '')
  t.equal(new Set(ids).size, 10000, 'distinct')
  t.ok(ids.every((id) => /^[A-Za-z0-9_-]{32}$/.test(id)), 'each 32 base64url characters: 24 random bytes, 192 bits')
  // χ² over the 64 symbols: a counter, a clock or a short random part would be far off. 63
  // degrees of freedom; 135 is exceeded by chance less than once in a million runs.
  const counts = new Map<string, number>()
  for (const id of ids) for (const symbol of id) counts.set(symbol, (counts.get(symbol) ?? 0) + 1)
  const expected = (10000 * 32) / 64
  const chiSquare = [...BASE64URL].reduce((sum, symbol) => sum + ((counts.get(symbol) ?? 0) - expected) ** 2 / expected, 0)
  t.ok(chiSquare < 135, `symbols evenly spread (χ² = ${chiSquare.toFixed(1)})`)
})

t.test('parallel requests on one session never 5xx, including when they all extend its expiry', async (t) => {
  // The full idle timeout for an empty session, so setting it two hours back leaves it live.
  const { db, base, client } = await serve(t, { SESSION_ANONYMOUS_MAX_AGE: '0' })
  const created = (await client.request('/session')).json().createdAt
  const cookie = client.cookie as string

  const together = await sendAll(base, Array.from({ length: 100 }, () => ({ headers: { cookie } })), 25)
  t.same([...new Set(together.map((res) => res.status))], [200])
  t.same([...new Set(together.map((res) => res.json().createdAt))], [created], 'the same session for all')

  // Two hours behind: each of these requests finds the expiry lagging and writes it.
  await db.pool.query('UPDATE sessions SET expires = expires - 7200')
  const lagging = await storedExpiry(db)
  const touching = await sendAll(base, Array.from({ length: 50 }, () => ({ headers: { cookie } })), 25)
  t.same([...new Set(touching.map((res) => res.status))], [200])
  await new Promise((resolve) => setTimeout(resolve, 200)) // the touch is written after the answer
  t.ok(await storedExpiry(db) >= lagging + 7200, 'the expiry was extended')
  t.equal(await countRows(db), 1, 'still one row')
})

t.test('parallel cookieless requests create one session each, nothing worse', async (t) => {
  const { db, base } = await serve(t)
  const answers = await sendAll(base, Array.from({ length: 50 }, () => ({})), 25)
  t.same([...new Set(answers.map((res) => res.status))], [200])
  t.equal(new Set(answers.map((res) => sessionCookie(res.headers['set-cookie']))).size, 50)
  t.equal(await countRows(db), 50)
})
