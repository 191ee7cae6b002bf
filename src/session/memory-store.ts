import type { SessionData } from 'express-session'
import { providerLoginKey, providerLoginKeyOf, userKey, userKeyOf, type SessionUserMapper } from './identity.js'
import { isLive, isPastAbsoluteTimeout, isUnchangedSince, storedExpiresSeconds, touchIsDue, type LifetimePolicy } from './lifetime.js'
import { PromiseSessionStore, SessionEndedError, type ManagedStore, type StoredSession } from './managed-store.js'
import { loadedText, markLoaded, markPersisted, persistedExpiry, sessionContent } from './persisted.js'
import type { SessionUser } from './session-data.js'
import { adoptStoredTokens, holdsReadTokens } from './sso-tokens.js'
import { parseStoredData, sessionShapeProblem } from './stored-data.js'

/** One session as the MySQL store's row holds it: JSON text, expiry in seconds, user key. */
interface MemoryRow {
  data: string
  expires: number
  /** NULL for a user the mapper cannot tell (identity.ts), as in the MySQL store. */
  userKey: string | null
  /** The provider login it came from (identity.ts providerLoginKey), or NULL. */
  ssoKey: string | null
}

/**
 * The development fallback when no database is configured, with the MySQL store's rules and
 * contract (managed-store.ts): the same expiry, the same user key, no resurrection after logout.
 * Data is kept as JSON text, so what `get` returns is a copy, as from a database.
 */
export class MemorySessionStore extends PromiseSessionStore implements ManagedStore {
  private readonly rows = new Map<string, MemoryRow>()
  // claimOnce's keys and until when (ms) each is held.
  private readonly claims = new Map<string, number>()

  constructor (private readonly policy: LifetimePolicy, mapper?: SessionUserMapper) {
    super(mapper)
  }

  async ping (): Promise<void> {}

  async close (): Promise<void> {}

  protected async remove (sid: string): Promise<void> {
    this.rows.delete(sid)
  }

  protected async removeAll (): Promise<void> {
    this.rows.clear()
  }

  async cleanupExpired (): Promise<number> {
    let removed = 0
    for (const [sid, row] of this.rows) {
      if (!isLive(row.expires)) {
        this.rows.delete(sid)
        removed++
      }
    }
    return removed
  }

  async claimOnce (key: string, forMs: number): Promise<boolean> {
    const now = Date.now()
    for (const [claimed, until] of this.claims) if (until <= now) this.claims.delete(claimed)
    if (this.claims.has(key)) return false
    this.claims.set(key, now + forMs)
    return true
  }

  async releaseOnce (key: string): Promise<void> {
    this.claims.delete(key)
  }

  async countLive (): Promise<number> {
    let live = 0
    for (const row of this.rows.values()) if (isLive(row.expires)) live++
    return live
  }

  async sessionsOf (user: SessionUser): Promise<StoredSession[]> {
    const key = userKey(user)
    const now = Date.now()
    return [...this.rows].flatMap(([id, row]) => {
      if (row.userKey !== key || !isLive(row.expires, now)) return []
      const data = parseStoredData(row.data)
      if (!data || sessionShapeProblem(data) !== undefined || isPastAbsoluteTimeout(data, this.policy, now)) return []
      return [{ id, data: data as Partial<SessionData>, expiresAt: row.expires * 1000 }]
    })
  }

  private rowOf (data: string, expires: number, session: SessionData): MemoryRow {
    return { data, expires, userKey: userKeyOf(session, this.mapper), ssoKey: providerLoginKeyOf(session) }
  }

  async endSessionsOfProviderLogin (issuer: string, sid: string): Promise<number> {
    const key = providerLoginKey(issuer, sid)
    let ended = 0
    for (const [id, row] of this.rows) {
      if (row.ssoKey === key) {
        this.rows.delete(id)
        ended++
      }
    }
    return ended
  }

  async endSessionsOf (user: SessionUser, keepId?: string): Promise<number> {
    const key = userKey(user)
    let ended = 0
    for (const [id, row] of this.rows) {
      if (row.userKey === key && id !== keepId) {
        this.rows.delete(id)
        ended++
      }
    }
    return ended
  }

  protected async read (sid: string): Promise<SessionData | null> {
    const row = this.rows.get(sid)
    if (!row || !isLive(row.expires)) return null
    const data = parseStoredData(row.data)
    if (!data) return null
    if (isPastAbsoluteTimeout(data, this.policy)) {
      this.rows.delete(sid)
      return null
    }
    markPersisted(data, sid, row.expires)
    markLoaded(data, sid, row.data)
    return data as unknown as SessionData
  }

  protected async write (sid: string, session: SessionData): Promise<void> {
    if (isUnchangedSince(sid, session, this.policy)) return
    const row = this.rows.get(sid)
    if (persistedExpiry(session, sid) !== undefined && !row) throw new SessionEndedError()
    // The MySQL store's rule: tokens this request did not change never go over newer ones (sso-tokens.ts).
    const read = loadedText(session, sid)
    if (row && read !== undefined && row.data !== read && holdsReadTokens(session, read)) adoptStoredTokens(session, row.data)
    const expires = storedExpiresSeconds(session, this.policy)
    const data = JSON.stringify(session)
    this.rows.set(sid, this.rowOf(data, expires, session))
    markPersisted(session, sid, expires, sessionContent(session))
    markLoaded(session, sid, data)
  }

  async rewriteUnchanged (sid: string, session: SessionData): Promise<void> {
    const row = this.rows.get(sid)
    if (!row || row.data !== loadedText(session, sid)) return
    const expires = storedExpiresSeconds(session, this.policy)
    this.rows.set(sid, this.rowOf(JSON.stringify(session), expires, session))
    markPersisted(session, sid, expires, sessionContent(session))
  }

  protected async lazyTouch (sid: string, session: SessionData): Promise<void> {
    if (!touchIsDue(sid, session, this.policy)) return
    const row = this.rows.get(sid)
    if (!row) return
    row.expires = storedExpiresSeconds(session, this.policy)
    markPersisted(session, sid, row.expires)
  }

  protected async liveSessions (): Promise<Record<string, SessionData>> {
    const sessions: Record<string, SessionData> = {}
    for (const sid of this.rows.keys()) {
      const data = await this.read(sid)
      if (data) sessions[sid] = data
    }
    return sessions
  }
}
