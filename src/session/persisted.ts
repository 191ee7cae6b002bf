import type { SessionData } from 'express-session'

// A session object that came out of the store, or was written to it in this request, carries the
// expiry (in seconds) that the store holds for it. That tells a save whether the row may be
// inserted (a session the store has never seen) or only updated (so a late request cannot
// resurrect a session that logout deleted meanwhile), and tells touch how far the row lags.
const STORED_EXPIRES = Symbol('stored expires (s)')

type Marked = { [STORED_EXPIRES]?: number }

export function markPersisted (session: object, expiresSeconds: number): void {
  (session as Marked)[STORED_EXPIRES] = expiresSeconds
}

/** The stored expiry in seconds, or undefined for a session the store has not seen. */
export function persistedExpiry (session: object): number | undefined {
  return (session as Marked)[STORED_EXPIRES]
}

/** The expiry a save or touch should store, in whole seconds. */
export function expiresSeconds (session: SessionData, fallbackMs: number): number {
  const expires = session.cookie?.expires
  const ms = expires ? new Date(expires).getTime() : Date.now() + fallbackMs
  return Math.round(ms / 1000)
}

/**
 * Whether an unchanged session's stored expiry lags far enough behind its new one to be rewritten:
 * writing on every request would cost a query each (lazy touch).
 */
export function touchIsDue (session: SessionData, maxAgeMs: number, touchAfterMs: number): boolean {
  const stored = persistedExpiry(session)
  return stored === undefined || (expiresSeconds(session, maxAgeMs) - stored) * 1000 >= touchAfterMs
}
