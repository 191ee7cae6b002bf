import expressSession, { type SessionData, type Store } from 'express-session'
import { carryPersisted } from './persisted.js'
import { defaultSessionUser, sessionUserOf, type SessionUserMapper } from './identity.js'
import type { SessionUser } from './session-data.js'

/** A live session as the store holds it. */
export interface StoredSession {
  id: string
  /** What the row holds: a session a request could use (rows it could not use are not listed). */
  data: Partial<SessionData>
  /** When the store will consider it expired unless it is used again, in ms since the epoch. */
  expiresAt: number
}

/**
 * What the app needs from a session store beyond express-session's Store interface. Both stores
 * keep the same contract: `get` returns exactly what `set` was given (their bookkeeping lives
 * beside the session, see persisted.ts), a session read from the store is only ever updated, never
 * inserted again, and one comparison on the stored expiry decides what is live everywhere.
 */
export interface ManagedStore extends Store {
  /** Extends a session's stored expiry (lazily: see lifetime.ts); never inserts, never rejects. */
  touch (sid: string, session: SessionData, callback?: () => void): void
  /** Resolves when the store answers within `deadlineMs`; rejects with StoreUnavailableError otherwise. */
  ping (deadlineMs?: number): Promise<void>
  /** Removes expired sessions; resolves with how many went (0 when another instance is on it). */
  cleanupExpired (options?: CleanupOptions): Promise<number>
  /** How many sessions have not expired (what the live-sessions gauge shows). */
  countLive (): Promise<number>
  /** The database servers the store may use and whether it sends them queries now (a database store). */
  databaseNodes?: () => Array<{ node: string, usable: boolean }>
  /** Every live session of a user, found through the user key the store writes on every save. */
  sessionsOf (user: SessionUser): Promise<StoredSession[]>
  /** Ends every session of a user except `keepId`; resolves with how many ended. */
  endSessionsOf (user: SessionUser, keepId?: string): Promise<number>
  /**
   * Ends every session that came from this identity provider's login session (`sid`), found
   * through the provider-login key the store writes on every save; resolves with how many ended.
   */
  endSessionsOfProviderLogin (issuer: string, sid: string): Promise<number>
  /**
   * Writes a session this request read and did not change (to store attributes the configuration
   * changed), only if its row still holds what was read: never over a concurrent request's write.
   * Best effort, never rejects.
   */
  rewriteUnchanged (sid: string, session: SessionData): Promise<void>
  /**
   * Claims `key` for `forMs` on behalf of every instance sharing the store: true the first time,
   * false while that claim holds. Back-channel logout refuses a logout token's second use with it.
   */
  claimOnce (key: string, forMs: number): Promise<boolean>
  /** Gives a claim back: the work it guarded failed, and a retry must be able to claim it. */
  releaseOnce (key: string): Promise<void>
  /** Stops the store's background work; the caller ends its pool afterwards. */
  close (): Promise<void>
  /**
   * The logged-in user of stored data, under the store's SessionUserMapper (identity.ts): the one
   * function behind every user key the store writes and looks up, and behind `session.user`.
   */
  userOf (data: object): SessionUser | undefined
}

/** Ends a session by id (another device's: the request's own ends through express-session's destroy). */
export function destroySession (store: Store, sid: string): Promise<void> {
  return new Promise<void>((resolve, reject) => store.destroy(sid, (error) => error ? reject(error) : resolve()))
}

export interface CleanupOptions {
  /** Stops a long cleanup between batches (the server is closing). */
  signal?: AbortSignal
  /**
   * The cleanup's period: of all instances on one database, one runs it per interval (the first to
   * claim it). Without it, a cleanup runs whenever no other instance's is running.
   */
  intervalMs?: number
}

/**
 * The database refused the session's data as such (a JSON `data` column's CHECK: nesting of 32
 * levels or more, an unpaired surrogate escape). Nothing was written; retrying cannot help.
 */
export class SessionRejectedError extends Error {
  override name = 'SessionRejectedError'
  readonly statusCode = 400

  constructor () {
    super('The session data cannot be stored in this database (its JSON column refuses it: too deeply nested, or an unpaired surrogate)')
  }
}

export type Callback<T> = (error: unknown, value?: T) => void

/**
 * A save of a session that came from the store found its row gone: logout or a revocation ended it
 * while this request ran. Nothing was written, and no cookie must name the ended session.
 */
export class SessionEndedError extends Error {
  override name = 'SessionEndedError'
  readonly statusCode = 409

  constructor () {
    super('The session ended while this request ran (logged out or revoked); nothing was saved')
  }
}

/**
 * express-session calls stores with callbacks; the stores here are written with promises. The
 * callback runs outside the promise chain, as MemoryStore's does: one that throws is an ordinary
 * exception at its own call, not an unhandled rejection (nor a second call with its own error,
 * which a `.then(cb).catch(cb)` chain would make).
 */
export function settle<T> (work: Promise<T>, callback?: Callback<T>): Promise<T> | undefined {
  if (!callback) return work
  work.then(
    (value) => { process.nextTick(callback, null, value) },
    (error: unknown) => { process.nextTick(callback, error) }
  )
  return undefined
}

/**
 * express-session's callback Store interface over the promise methods each store implements, so
 * both stores answer callers (express-session, a test suite, a consumer) in exactly the same way.
 */
export abstract class PromiseSessionStore extends expressSession.Store {
  /** Who is logged in, for every user key the store computes (identity.ts). */
  constructor (protected readonly mapper: SessionUserMapper = defaultSessionUser) {
    super()
  }

  /** ManagedStore#userOf: the store's mapper, as behind its user keys. */
  userOf (data: object): SessionUser | undefined {
    return sessionUserOf(data as Record<string, unknown>, this.mapper)
  }

  /** What `write` stored, or null for an unknown or expired session. */
  protected abstract read (sid: string): Promise<SessionData | null>
  protected abstract write (sid: string, session: SessionData): Promise<void>
  protected abstract lazyTouch (sid: string, session: SessionData): Promise<void>
  protected abstract remove (sid: string): Promise<void>
  protected abstract removeAll (): Promise<void>
  /** Every live session by id, as `read` would return each. */
  protected abstract liveSessions (): Promise<Record<string, SessionData>>

  override get (sid: string, callback?: Callback<SessionData | null>) {
    return settle(this.read(sid), callback)
  }

  override set (sid: string, session: SessionData, callback?: Callback<void>) {
    return settle(this.write(sid, session), callback)
  }

  override touch (sid: string, session: SessionData, callback?: Callback<void>) {
    return settle(this.lazyTouch(sid, session), callback)
  }

  override destroy (sid: string, callback?: Callback<void>) {
    return settle(this.remove(sid), callback)
  }

  override all (callback?: Callback<Record<string, SessionData>>) {
    return settle(this.liveSessions(), callback)
  }

  /** How many sessions `all` returns, exactly (express-session's contract, not a hot path: the live-sessions gauge uses countLive). */
  override length (callback?: Callback<number>) {
    return settle(this.liveSessions().then((sessions) => Object.keys(sessions).length), callback)
  }

  override clear (callback?: Callback<void>) {
    return settle(this.removeAll(), callback)
  }

  /** Keeps what `read` knows of the data on the Session express-session builds from it. */
  override createSession (req: Parameters<expressSession.Store['createSession']>[0], data: SessionData) {
    const session = super.createSession(req, data)
    carryPersisted(data, session)
    return session
  }
}
