import type { SessionData, Store } from 'express-session'

/** A live session as the store holds it. */
export interface StoredSession {
  id: string
  data: SessionData
  /** When the store will consider it expired unless it is used again, in ms since the epoch. */
  expiresAt: number
}

/** What the app needs from a session store beyond express-session's Store interface. */
export interface ManagedStore extends Store {
  /** Extends a session's stored expiry (lazily: see each store); never rejects. */
  touch (sid: string, session: SessionData, callback?: () => void): void
  /** Resolves when the store answers within `deadlineMs`; rejects with StoreUnavailableError otherwise. */
  ping (deadlineMs?: number): Promise<void>
  /** Removes expired sessions; resolves with how many went (0 when another instance is on it). */
  cleanupExpired (options?: CleanupOptions): Promise<number>
  /** How many sessions have not expired (what the live-sessions gauge shows). */
  countLive (): Promise<number>
  /** Every live session of a logged-in user. */
  sessionsOf (userName: string): Promise<StoredSession[]>
  /** Ends every session of a user except `keepId`; resolves with how many ended. */
  endSessionsOf (userName: string, keepId?: string): Promise<number>
}

export interface CleanupOptions {
  /** Stops a long cleanup between batches (the server is closing). */
  signal?: AbortSignal
}

export type Callback<T> = (error: unknown, value?: T) => void

/** express-session calls stores with callbacks; the stores here are written with promises. */
export function settle<T> (work: Promise<T>, callback?: Callback<T>): Promise<T> | undefined {
  if (!callback) return work
  work.then((value) => callback(null, value), (error: unknown) => callback(error))
  return undefined
}
