import expressSession, { type SessionData } from 'express-session'
import { type Callback, type ManagedStore } from './managed-store.js'
import { expiresSeconds, markPersisted, persistedExpiry } from './persisted.js'

/**
 * The development fallback when no database is configured: express-session's MemoryStore, with
 * the same "a late save cannot resurrect a deleted session" rule as the MySQL store, and a prune
 * so expired sessions do not pile up (MemoryStore only drops one when it is read).
 */
export class MemorySessionStore extends expressSession.MemoryStore implements ManagedStore {
  constructor (private readonly maxAgeMs: number) {
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

  override createSession (req: Parameters<expressSession.Store['createSession']>[0], data: SessionData) {
    const session = super.createSession(req, data)
    markPersisted(session, expiresSeconds(data, this.maxAgeMs))
    return session
  }

  override set (sid: string, session: SessionData, callback?: Callback<void>): void {
    const endedMeanwhile = persistedExpiry(session) !== undefined && !(sid in this.sessionsById())
    if (endedMeanwhile) {
      callback?.(null)
      return
    }
    super.set(sid, session, (error?: unknown) => {
      if (!error) markPersisted(session, expiresSeconds(session, this.maxAgeMs))
      callback?.(error)
    })
  }

  private count (): number {
    return Object.keys(this.sessionsById()).length
  }

  // MemoryStore keeps its sessions in a plain object it does not declare in its types.
  private sessionsById (): Record<string, string> {
    return (this as unknown as { sessions: Record<string, string> }).sessions
  }
}

