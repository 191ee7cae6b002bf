import expressSession, { type SessionData } from 'express-session'
import { type Callback, type ManagedStore, type StoredSession } from './managed-store.js'
import { expiresSeconds, markPersisted, persistedExpiry } from './persisted.js'
import { isPastAbsoluteTimeout } from './timeouts.js'

export interface MemorySessionStoreOptions {
  maxAgeMs: number
  absoluteTimeoutMs: number
}

/**
 * The development fallback when no database is configured: express-session's MemoryStore, with
 * the MySQL store's rules (a late save cannot resurrect a deleted session, the absolute timeout,
 * listing a user's sessions) and a prune so expired sessions do not pile up (MemoryStore only
 * drops one when it is read).
 */
export class MemorySessionStore extends expressSession.MemoryStore implements ManagedStore {
  constructor (private readonly settings: MemorySessionStoreOptions) {
    super()
  }

  async ping (): Promise<void> {}

  cleanupExpired (): Promise<number> {
    const before = this.count()
    return new Promise((resolve) => {
      // MemoryStore.all() deletes the expired sessions it walks over.
      this.all(() => resolve(before - this.count()))
    })
  }

  override get (sid: string, callback: Callback<SessionData | null>): void {
    super.get(sid, (error, data) => {
      if (data && isPastAbsoluteTimeout(data, this.settings.absoluteTimeoutMs)) {
        this.destroy(sid)
        callback(null, null)
        return
      }
      callback(error, data)
    })
  }

  override createSession (req: Parameters<expressSession.Store['createSession']>[0], data: SessionData) {
    const session = super.createSession(req, data)
    markPersisted(session, expiresSeconds(data, this.settings.maxAgeMs))
    return session
  }

  override set (sid: string, session: SessionData, callback?: Callback<void>): void {
    const endedMeanwhile = persistedExpiry(session) !== undefined && !(sid in this.sessionsById())
    if (endedMeanwhile) {
      callback?.(null)
      return
    }
    super.set(sid, session, (error?: unknown) => {
      if (!error) markPersisted(session, expiresSeconds(session, this.settings.maxAgeMs))
      callback?.(error)
    })
  }

  async countLive (): Promise<number> {
    const now = Date.now()
    return this.entries().filter(({ expiresAt }) => expiresAt > now).length
  }

  async sessionsOf (userName: string): Promise<StoredSession[]> {
    const now = Date.now()
    return this.entries().filter(({ data, expiresAt }) =>
      data.user?.name === userName && expiresAt > now && !isPastAbsoluteTimeout(data, this.settings.absoluteTimeoutMs, now))
  }

  async endSessionsOf (userName: string, keepId?: string): Promise<number> {
    const ending = this.entries().filter(({ id, data }) => data.user?.name === userName && id !== keepId)
    for (const { id } of ending) delete this.sessionsById()[id]
    return ending.length
  }

  private entries (): StoredSession[] {
    return Object.entries(this.sessionsById()).map(([id, text]) => {
      const data = JSON.parse(text) as SessionData
      return { id, data, expiresAt: expiresSeconds(data, this.settings.maxAgeMs) * 1000 }
    })
  }

  private count (): number {
    return Object.keys(this.sessionsById()).length
  }

  // MemoryStore keeps its sessions as JSON strings in a plain object it does not declare in its types.
  private sessionsById (): Record<string, string> {
    return (this as unknown as { sessions: Record<string, string> }).sessions
  }
}
