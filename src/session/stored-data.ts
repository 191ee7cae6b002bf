import { createHash } from 'node:crypto'
import type { SessionData } from 'express-session'

type JsonObject = Record<string, unknown>

// Deeper data overflows the stack where express-session hashes and stringifies a session; a
// client's own state is held to far less (STATE_MAX_DEPTH).
const MAX_SESSION_DEPTH = 64

// Dates beyond this are Invalid Date (ECMAScript's time range); toISOString() would throw on them.
const MAX_TIME_MS = 8.64e15

/**
 * Reads a row's `data` column: text (express-mysql-session's default), a Buffer (a BLOB column), or
 * an object (a JSON column, which mysql2 parses). Returns the object it holds, or `undefined` when it
 * holds none or holds `__proto__` or `constructor.prototype` keys that copying could turn into
 * prototype pollution. The rule is the one Fastify's body parser applies (secure-json-parse), so a
 * state a client was allowed to store (`{"constructor":"x"}`, say) is always read back.
 */
export function parseStoredData (raw: unknown): JsonObject | undefined {
  if (Buffer.isBuffer(raw)) return parseText(raw.toString('utf8'))
  if (typeof raw === 'string') return parseText(raw)
  if (isPlainObject(raw) && !hasDangerousKeys(raw)) return raw
  return undefined
}

function parseText (text: string): JsonObject | undefined {
  let polluted = false
  let value: unknown
  try {
    // A reviver costs a call per key on every read; only text that could spell a dangerous key
    // (directly or through a \u escape) needs one.
    value = mayHideDangerousKeys(text)
      ? JSON.parse(text, (key, inner: unknown) => {
        if (isDangerousKey(key, inner)) polluted = true
        return inner
      })
      : JSON.parse(text)
  } catch {
    return undefined
  }
  return !polluted && isPlainObject(value) ? value : undefined
}

function mayHideDangerousKeys (text: string): boolean {
  return text.includes('__proto__') || text.includes('constructor') || text.includes('\\u')
}

function isDangerousKey (key: string, value: unknown): boolean {
  return key === '__proto__' || (key === 'constructor' && isPlainObject(value) && Object.hasOwn(value, 'prototype'))
}

/** The same rule for an object mysql2 already parsed; walked without recursion, so no depth can overflow it. */
function hasDangerousKeys (root: JsonObject): boolean {
  const pending: unknown[] = [root]
  while (pending.length > 0) {
    const value = pending.pop()
    if (typeof value !== 'object' || value === null) continue
    for (const [key, inner] of Object.entries(value)) {
      if (isDangerousKey(key, inner)) return true
      pending.push(inner)
    }
  }
  return false
}

/**
 * What is wrong with stored data for express-session and this project's routes to use it as a
 * session, or undefined when nothing is. Every field the code relies on is checked; cookie
 * attributes other than the expiry are not, because they always come from the configuration.
 * A consumer's own fields are theirs to check, and so is `user`: a `user` of another shape (an
 * earlier app's `{ id, username }`) is kept as stored. It never makes the session a logged-in one
 * by itself: only what the store's SessionUserMapper finds does (identity.ts).
 */
export function sessionShapeProblem (data: JsonObject): string | undefined {
  if (nestingDepth(data) > MAX_SESSION_DEPTH) return `nests deeper than ${MAX_SESSION_DEPTH} levels`
  const cookie = data.cookie
  if (!isPlainObject(cookie)) return 'no cookie object'
  if (cookie.expires !== undefined && cookie.expires !== null && !isTime(cookie.expires)) return 'cookie.expires is not a date'
  if (cookie.originalMaxAge !== undefined && cookie.originalMaxAge !== null && !isDuration(cookie.originalMaxAge)) return 'cookie.originalMaxAge is not a duration'
  if (data.createdAt !== undefined && !isTimeNumber(data.createdAt)) return 'createdAt is not a time in ms'
  if (data.userAgent !== undefined && typeof data.userAgent !== 'string') return 'userAgent is not a string'
  if (data.ip !== undefined && typeof data.ip !== 'string') return 'ip is not a string'
  if (data.ssoLogin !== undefined && !hasFields(data.ssoLogin, { state: 'string', nonce: 'string', codeVerifier: 'string', returnTo: 'string', startedAt: 'number' })) {
    return 'ssoLogin is not a pending single sign-on login'
  }
  if (data.sso !== undefined && !hasFields(data.sso, { idToken: 'string', accessToken: 'string', refreshToken: 'string?', accessTokenExpiresAt: 'number?', sid: 'string?' })) {
    return 'sso does not hold the provider\'s tokens'
  }
  return undefined
}

/** Whether `value` is an object whose fields have these types (`?`: or absent). */
function hasFields (value: unknown, types: Record<string, 'string' | 'number' | 'string?' | 'number?'>): boolean {
  if (!isPlainObject(value)) return false
  return Object.entries(types).every(([name, type]) => {
    const field = value[name]
    if (field === undefined) return type.endsWith('?')
    return type.startsWith('number') ? typeof field === 'number' && Number.isFinite(field) : typeof field === 'string'
  })
}

/** Stored data that `sessionShapeProblem` accepted. */
export function asSessionData (data: JsonObject): SessionData {
  return data as unknown as SessionData
}

function isTimeNumber (value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && Math.abs(value) <= MAX_TIME_MS
}

function isTime (value: unknown): boolean {
  return (typeof value === 'string' || typeof value === 'number') && isTimeNumber(new Date(value).getTime())
}

function isDuration (value: unknown): boolean {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 && value <= MAX_TIME_MS
}

export function isPlainObject (value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !Buffer.isBuffer(value)
}

/** A short, non-reversible name for a session in logs: never log the id itself. */
export function sessionFingerprint (sessionId: string): string {
  return createHash('sha256').update(sessionId).digest('base64url').slice(0, 12)
}

/** How deeply arrays and objects nest in a parsed JSON value, counted without recursion. */
export function nestingDepth (value: unknown): number {
  let deepest = 0
  const pending: Array<[unknown, number]> = [[value, 1]]
  while (pending.length > 0) {
    const [item, depth] = pending.pop() as [unknown, number]
    if (typeof item !== 'object' || item === null) continue
    deepest = Math.max(deepest, depth)
    for (const inner of Object.values(item)) pending.push([inner, depth + 1])
  }
  return deepest
}
