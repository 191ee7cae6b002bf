import type { SessionData } from 'express-session'
import { persistedExpiry, sessionContent, writtenContent } from './persisted.js'

/** How long sessions live: what both stores and the routes apply, in ms. */
export interface LifetimePolicy {
  /** The idle timeout (and the cookie's Max-Age). */
  maxAgeMs: number
  /** Counted from creation, which login resets; 0 turns it off. */
  absoluteTimeoutMs: number
  /** The idle timeout of a session that carries nothing yet; 0: the same as `maxAgeMs`. */
  anonymousMaxAgeMs: number
  /** An unmodified session's stored expiry is rewritten only once it lags by more than this. */
  touchAfterMs: number
}

type SessionLike = Partial<SessionData> & object

// Fields the project itself writes into every session: a session with nothing else carries nothing
// anybody would miss, so it need not be kept for a whole idle timeout (see anonymousMaxAgeMs).
const BOOKKEEPING_FIELDS = new Set(['cookie', 'createdAt'])

/** Nothing but the cookie and the creation time: a visit that has stored nothing yet. */
export function carriesNothing (session: object): boolean {
  // Keys, not entries: this runs on every read, and entries builds an array per field.
  for (const key of Object.keys(session)) {
    if (!BOOKKEEPING_FIELDS.has(key) && (session as Record<string, unknown>)[key] !== undefined) return false
  }
  return true
}

/** The idle end, shortened for a session that carries nothing and capped by the absolute timeout. */
function cappedEnd (session: SessionLike, idleEndMs: number, policy: LifetimePolicy, now: number): number {
  let end = idleEndMs
  if (policy.anonymousMaxAgeMs > 0 && carriesNothing(session)) end = Math.min(end, now + policy.anonymousMaxAgeMs)
  if (policy.absoluteTimeoutMs > 0 && typeof session.createdAt === 'number') end = Math.min(end, session.createdAt + policy.absoluteTimeoutMs)
  return end
}

/**
 * The expiry a save or touch stores, in whole seconds: the cookie's, shortened by the rules above.
 * Storing the absolute timeout in the row too means one comparison on `expires` decides what is
 * live, for get, all, length, the user's list and the cleanup alike.
 */
export function storedExpiresSeconds (session: SessionLike, policy: LifetimePolicy, now = Date.now()): number {
  const cookieExpires = session.cookie?.expires
  const cookieEnd = cookieExpires ? new Date(cookieExpires).getTime() : Number.NaN
  return expiresSecondsFrom(session, Number.isFinite(cookieEnd) ? cookieEnd : Infinity, policy, now)
}

/** The expiry for a cookie that ends at `cookieEndMs` (Infinity: a browser-session cookie). */
function expiresSecondsFrom (session: SessionLike, cookieEndMs: number, policy: LifetimePolicy, now: number): number {
  // Never beyond the configured idle timeout, whatever a route set the cookie to.
  return Math.round(cappedEnd(session, Math.min(cookieEndMs, now + policy.maxAgeMs), policy, now) / 1000)
}

/** `expires` as stored compared with now: the one rule for what is live (SQL uses `expires > nowSeconds()`). */
export function isLive (expiresSeconds: number, now = Date.now()): boolean {
  return expiresSeconds > nowSeconds(now)
}

export function nowSeconds (now = Date.now()): number {
  return Math.floor(now / 1000)
}

/**
 * The absolute timeout has passed. Rows written since the timeout was configured already carry it
 * in `expires`; this catches rows written before (or under a longer timeout).
 */
export function isPastAbsoluteTimeout (session: SessionLike, policy: LifetimePolicy, now = Date.now()): boolean {
  return policy.absoluteTimeoutMs > 0 && typeof session.createdAt === 'number' && session.createdAt + policy.absoluteTimeoutMs <= now
}

/**
 * Whether an unchanged session's stored expiry lags far enough behind its new one to be rewritten:
 * writing on every request would cost a query each (lazy touch). A session that carries nothing
 * lives a short time, so it is touched at a tenth of that.
 */
export function touchIsDue (sid: string, session: SessionLike, policy: LifetimePolicy, now = Date.now()): boolean {
  const stored = persistedExpiry(session, sid)
  return stored === undefined || lagsEnough(storedExpiresSeconds(session, policy, now), stored, session, policy)
}

function lagsEnough (newSeconds: number, storedSeconds: number, session: SessionLike, policy: LifetimePolicy): boolean {
  const short = policy.anonymousMaxAgeMs > 0 && carriesNothing(session)
  const after = short ? Math.min(policy.touchAfterMs, Math.floor(policy.anonymousMaxAgeMs / 10)) : policy.touchAfterMs
  return (newSeconds - storedSeconds) * 1000 >= after
}

/**
 * When the store will end the session if the client stays away after this request, in ms since
 * the epoch, as a route sees it (the bridge renews the cookie only once the route is done): the
 * expiry the store holds, unless this request rewrites it (a first save, a due touch, `resave`).
 * Not `now + maxAge`: a lazy touch leaves the stored expiry behind that on most reads.
 */
export function enforcedEndOf (sid: string, session: SessionLike, policy: LifetimePolicy, resave: boolean, now = Date.now()): number {
  // The cookie as the bridge renews it: its own lifetime from now (a route may have shortened it,
  // or made it a browser-session cookie with null).
  const lifetime = session.cookie?.originalMaxAge
  const renewed = expiresSecondsFrom(session, typeof lifetime === 'number' ? now + lifetime : Infinity, policy, now)
  const stored = persistedExpiry(session, sid)
  const rewritten = resave || stored === undefined || lagsEnough(renewed, stored, session, policy)
  const end = (rewritten ? renewed : stored) * 1000
  // Reads also check the absolute timeout to the millisecond (isPastAbsoluteTimeout).
  return policy.absoluteTimeoutMs > 0 && typeof session.createdAt === 'number' ? Math.min(end, session.createdAt + policy.absoluteTimeoutMs) : end
}

/**
 * Whether a save would change nothing the store cares about: it wrote this very content in this
 * request, and the expiry has not moved by enough for a touch.
 */
export function isUnchangedSince (sid: string, session: SessionLike, policy: LifetimePolicy): boolean {
  const written = writtenContent(session, sid)
  return written !== undefined && written === sessionContent(session) && !touchIsDue(sid, session, policy)
}
