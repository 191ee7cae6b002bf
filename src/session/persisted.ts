import type { SessionData } from 'express-session'

// A session object that came out of the store, or was written to it in this request, carries the
// expiry (in seconds) that the store holds for it. That tells a save whether the row may be
// inserted (a session the store has never seen) or only updated (so a late request cannot
// resurrect a session that logout deleted meanwhile), and tells touch how far the row lags.
const STORED_EXPIRES = Symbol('stored expires (s)')
// The content (all but the cookie) this process last wrote for it, when it wrote it in this request:
// lets the store skip a save that changes nothing (express-session saves a session regenerated at
// login a second time, its cookie's expiry a few milliseconds later).
const WRITTEN_CONTENT = Symbol('written content')

type Marked = { [STORED_EXPIRES]?: number, [WRITTEN_CONTENT]?: string }

/** Records what the store holds for this session; `content` when the store just wrote it. */
export function markPersisted (session: object, expiresSeconds: number, content?: string): void {
  (session as Marked)[STORED_EXPIRES] = expiresSeconds
  if (content !== undefined) (session as Marked)[WRITTEN_CONTENT] = content
}

/** What express-session itself compares to decide a session was modified: everything but the cookie. */
export function sessionContent (session: object): string {
  return JSON.stringify(session, function (this: unknown, key, value: unknown) {
    return this === session && key === 'cookie' ? undefined : value
  })
}

/**
 * Whether a save would change nothing the store cares about: it wrote this very content in this
 * request, and the expiry has not moved by enough for a touch.
 */
export function isUnchangedSince (session: SessionData, maxAgeMs: number, touchAfterMs: number): boolean {
  const written = (session as Marked)[WRITTEN_CONTENT]
  return written !== undefined && written === sessionContent(session) && !touchIsDue(session, maxAgeMs, touchAfterMs)
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
