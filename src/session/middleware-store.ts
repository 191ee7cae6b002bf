import type { IncomingMessage } from 'node:http'
import type { Cookie, SessionData, Store } from 'express-session'
import type { FastifyBaseLogger } from 'fastify'
import { isSessionUser } from './identity.js'
import type { ManagedStore } from './managed-store.js'
import { isPlainObject, sessionFingerprint, sessionShapeProblem } from './stored-data.js'

/** The cookie attributes the configuration sets: the only source of them, for new and stored sessions alike. */
export interface CookiePolicy {
  secure: boolean | 'auto'
  sameSite: 'lax' | 'strict' | 'none'
  maxAgeMs: number
}

type CookieAttributes = Cookie & { domain?: string, partitioned?: boolean, priority?: string }

// Sessions whose stored cookie attributes differed from the configuration's: their browser still
// holds the old ones until the cookie is sent again, so the bridge sends it at once.
const outdatedCookies = new WeakSet<object>()
// The cookie as a row stored it, kept from `get` (which hands express-session the expiry alone)
// to `createSession` (which compares it with the configured attributes).
const storedCookies = new WeakMap<object, Record<string, unknown>>()

export function hasOutdatedCookie (session: object): boolean {
  return outdatedCookies.has(session)
}

/**
 * Sets every cookie attribute from the policy. `secure: 'auto'` follows the request, and never
 * downgrades a cookie that was Secure (it is then not sent over plain HTTP at all). SameSite=None
 * needs Secure (browsers drop the cookie otherwise), so without it, Lax. Returns whether the
 * result differs from `previous` (the attributes as stored; by default the cookie's own).
 */
export function applyCookiePolicy (cookie: Cookie, policy: CookiePolicy, https: boolean, previous: Record<string, unknown> = cookie as never): boolean {
  const target = cookie as CookieAttributes
  const secure = policy.secure === 'auto' ? https || previous.secure === true : policy.secure
  const sameSite = policy.sameSite === 'none' && !secure ? 'lax' : policy.sameSite
  const maxAge = allowedMaxAge(previous.originalMaxAge, policy.maxAgeMs)
  const changed = previous.path !== '/' || previous.httpOnly !== true || previous.secure !== secure ||
    previous.sameSite !== sameSite || previous.originalMaxAge !== maxAge ||
    previous.domain !== undefined || previous.partitioned !== undefined || previous.priority !== undefined
  target.path = '/'
  target.httpOnly = true
  target.secure = secure
  target.sameSite = sameSite
  // The stored expiry stands until the next touch, which counts from this.
  target.originalMaxAge = maxAge
  delete target.domain
  delete target.partitioned
  delete target.priority
  return changed
}

/** Holds a lifetime a route set in this request to what `allowedMaxAge` allows. */
export function limitCookieLifetime (cookie: Cookie, policy: CookiePolicy): void {
  cookie.originalMaxAge = allowedMaxAge(cookie.originalMaxAge, policy.maxAgeMs) as number
}

/**
 * A route may give its session a shorter lifetime than SESSION_MAX_AGE (express-session's
 * `req.session.cookie.maxAge = ms`, for example "remember me" off), or make it a browser-session
 * cookie (`maxAge = null`); never a longer one, and nothing that is not a duration.
 */
function allowedMaxAge (stored: unknown, configured: number): number | null {
  if (stored === null) return null
  return typeof stored === 'number' && Number.isFinite(stored) && stored > 0 && stored <= configured ? stored : configured
}

/** Whether express-session's request is over HTTPS, as Express decides it (per TRUST_PROXY). */
export function isHttps (req: IncomingMessage): boolean {
  return (req as IncomingMessage & { protocol?: string }).protocol === 'https'
}

/**
 * The store as express-session sees it. Differences from the store itself:
 * - `get` hands express-session only data it can use as a session: a row of the wrong shape
 *   (no cookie, a createdAt of 1e300...) is a fresh session and one warning, not a 5xx on
 *   every request that carries its cookie;
 * - a `user` of another shape than `{ name }` (an earlier app's) is kept; when the store's
 *   SessionUserMapper finds a user in the data, `session.user` is that user, merged over the
 *   earlier app's object (so that app still finds its own fields after this one writes the
 *   session). Done here, before express-session hashes the data, so a read alone changes nothing
 *   and writes nothing;
 * - a session read from the store gets its cookie attributes from the configuration, never from
 *   the row (an edited row cannot add `Domain` or drop `HttpOnly`; a tightened setting reaches
 *   existing sessions);
 * - no `touch`: express-session touches every unchanged session itself, and to do it, holds back
 *   the last byte of every response until the store calls back (its "split response"). The bridge
 *   touches instead, without making the answer wait.
 */
export function middlewareStore (store: ManagedStore, cookie: CookiePolicy, log: FastifyBaseLogger): Store {
  return Object.create(store, {
    touch: { value: undefined },
    get: {
      value (sid: string, callback: (error: unknown, session?: SessionData | null) => void) {
        store.get(sid, (error, data) => {
          if (error || !data) return callback(error, data)
          const problem = sessionShapeProblem(data as unknown as Record<string, unknown>)
          if (problem === undefined) {
            // express-session's Cookie copies every stored key onto itself (a `maxAge` of "x"
            // throws in its setter, a `serialize` key shadows the method): hand it the expiry alone,
            // applyCookiePolicy sets the rest.
            const stored = data.cookie as unknown as Record<string, unknown>
            storedCookies.set(data, stored)
            data.cookie = { expires: stored.expires, originalMaxAge: stored.originalMaxAge } as SessionData['cookie']
            mapStoredUser(store, data as unknown as Record<string, unknown>)
            return callback(null, data)
          }
          log.warn({ session: sessionFingerprint(sid), problem }, 'a stored session has the wrong shape; the client gets a fresh session')
          callback(null, null)
        })
      }
    },
    createSession: {
      value (req: IncomingMessage & { session?: unknown }, data: SessionData) {
        const session = store.createSession(req as never, data)
        if (applyCookiePolicy(session.cookie, cookie, isHttps(req), storedCookies.get(data))) outdatedCookies.add(session)
        return session
      }
    }
  }) as Store
}

/**
 * Gives data whose `user` is not `{ name }` the user the store's mapper finds in it, if any:
 * `{ ...legacyUser, name, iss?, sub? }` when the stored user is an object (its own iss and sub
 * dropped unless mapped), the user alone otherwise.
 * Data where nothing maps keeps its `user` as stored; the built-in routes treat it as anonymous.
 */
function mapStoredUser (store: ManagedStore, data: Record<string, unknown>): void {
  if (isSessionUser(data.user)) return
  const user = store.userOf(data)
  if (!user) return
  // name, iss and sub are who the user is (identity.ts): all three from the mapper, never a legacy
  // field of the same name, which would make the merged session another user's.
  const merged: Record<string, unknown> = isPlainObject(data.user) ? { ...data.user } : {}
  merged.name = user.name
  for (const field of ['iss', 'sub'] as const) {
    if (user[field] === undefined) delete merged[field]
    else merged[field] = user[field]
  }
  data.user = merged
}
