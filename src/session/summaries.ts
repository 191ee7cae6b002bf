import type { Config } from '../config/config.js'
import { sessionHandle } from './handles.js'
import type { StoredSession } from './managed-store.js'

/** What a user (GET /session/all) or an operator (npm run sessions -- list-user) sees of a session: never its id. */
export interface SessionSummary {
  /** An opaque handle (an HMAC of the id under SESSION_SECRET). */
  id: string
  current: boolean
  createdAt: string
  lastSeenAt: string
  userAgent: string | null
  ip: string | null
}

/** The sessions as listed, the current one (if any) first, then the most recently seen. */
export function summarizeSessions (sessions: StoredSession[], config: Config, currentId?: string, now = Date.now()): SessionSummary[] {
  return sessions
    .map(({ id, data, expiresAt }) => {
      const current = id === currentId
      const createdAt = data.createdAt ?? now
      return {
        id: sessionHandle(config.SESSION_SECRET as string, id),
        current,
        createdAt: new Date(createdAt).toISOString(),
        // The store keeps the expiry, one idle timeout after the last use it recorded (or earlier,
        // capped by the absolute timeout: then the creation time is the best it knows).
        lastSeenAt: new Date(current ? now : Math.min(now, Math.max(createdAt, expiresAt - config.SESSION_MAX_AGE))).toISOString(),
        userAgent: data.userAgent ?? null,
        ip: data.ip ?? null
      }
    })
    .sort((a, b) => Number(b.current) - Number(a.current) || b.lastSeenAt.localeCompare(a.lastSeenAt))
}
