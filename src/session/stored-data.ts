import { createHash } from 'node:crypto'
import type { SessionData } from 'express-session'

/**
 * Parses a row's `data` column. Anything express-session could choke on or be polluted by (not
 * JSON, not an object, no cookie, `__proto__` or `constructor.prototype` keys that copying could turn
 * into prototype pollution) is refused with `undefined`, so the client gets a fresh session instead
 * of a 5xx. The rule is the one Fastify's body parser applies (secure-json-parse), so a state a
 * client was allowed to store (`{"constructor":"x"}`, say) is always read back.
 */
export function parseStoredSession (text: unknown): SessionData | undefined {
  if (typeof text !== 'string') return undefined
  let polluted = false
  let value: unknown
  try {
    // A reviver costs a call per key on every read; only text that could spell a dangerous key
    // (directly or through a \u escape) needs one.
    value = mayHideDangerousKeys(text)
      ? JSON.parse(text, (key, inner: unknown) => {
        if (key === '__proto__' || (key === 'constructor' && isPlainObject(inner) && Object.hasOwn(inner, 'prototype'))) polluted = true
        return inner
      })
      : JSON.parse(text)
  } catch {
    return undefined
  }
  if (polluted || !isPlainObject(value)) return undefined
  const cookie = value.cookie
  if (!isPlainObject(cookie)) return undefined
  if (cookie.expires !== undefined && cookie.expires !== null && Number.isNaN(new Date(cookie.expires as string).getTime())) return undefined
  return value as unknown as SessionData
}

function mayHideDangerousKeys (text: string): boolean {
  return text.includes('__proto__') || text.includes('constructor') || text.includes('\\u')
}

function isPlainObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** A short, non-reversible name for a session in logs: never log the id itself. */
export function sessionFingerprint (sessionId: string): string {
  return createHash('sha256').update(sessionId).digest('base64url').slice(0, 12)
}
