import type { Config } from '../config/config.js'
import type { SessionData } from 'express-session'

/**
 * When a session ends if the client stays away from now on: the idle timeout from now, or the
 * absolute timeout counted from creation (login), whichever comes first. In ms since the epoch.
 */
export function sessionEndsAt (session: Partial<SessionData>, config: Config, now = Date.now()): number {
  const idleEnd = now + config.SESSION_MAX_AGE
  if (config.SESSION_ABSOLUTE_TIMEOUT === 0 || typeof session.createdAt !== 'number') return idleEnd
  return Math.min(idleEnd, session.createdAt + config.SESSION_ABSOLUTE_TIMEOUT)
}

/** The absolute timeout (counted from creation, which login resets) has passed; 0 turns it off. */
export function isPastAbsoluteTimeout (session: Partial<SessionData>, absoluteTimeoutMs: number, now = Date.now()): boolean {
  return absoluteTimeoutMs > 0 && typeof session.createdAt === 'number' && session.createdAt + absoluteTimeoutMs <= now
}
