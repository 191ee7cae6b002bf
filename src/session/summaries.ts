import Bowser from 'bowser'
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
  /** The User-Agent header of the login, as sent (at most 256 characters); null for sessions stored without one. */
  userAgent: string | null
  /** The same, for people: "Chrome on Linux", "Safari on iPhone", "Unknown browser". */
  device: string
  ip: string | null
}

export const UNKNOWN_BROWSER = 'Unknown browser'

// The names bowser knows. Its last resort takes whatever precedes a "/" in the header as the name
// ("Mozilla/5.0 (compatible; …" gives "Mozilla/5.0 (compatible; …"), which is no name to show.
const KNOWN_BROWSERS = new Set<string>(Object.values(Bowser.BROWSER_MAP))
// Shorter than bowser's, as people call them.
const BROWSER_NAMES: Record<string, string> = {
  'Microsoft Edge': 'Edge',
  'Samsung Internet for Android': 'Samsung Internet'
}

/**
 * The browser and system a User-Agent header names, for a person to recognize a session by:
 * "Firefox on Windows", "Safari on iPhone", "Chrome on Android"; "Unknown browser" (on … when the
 * system is known) for clients bowser does not know, such as curl, or no header at all.
 */
export function describeDevice (userAgent: string | null | undefined): string {
  // bowser refuses an empty string; the login stores one when the client sent no header.
  if (!userAgent?.trim()) return UNKNOWN_BROWSER
  const { browser, os, platform } = Bowser.parse(userAgent)
  const name = browser.name && KNOWN_BROWSERS.has(browser.name) ? (BROWSER_NAMES[browser.name] ?? browser.name) : UNKNOWN_BROWSER
  // An iPhone or iPad says more than "iOS"; otherwise the system: Linux, Windows, macOS, Android.
  const system = platform.vendor === 'Apple' && platform.model ? platform.model : os.name
  return system ? `${name} on ${system}` : name
}

/** The sessions as listed, the current one (if any) first, then the most recently seen. */
export function summarizeSessions (sessions: StoredSession[], config: Config, currentId?: string, now = Date.now()): SessionSummary[] {
  return sessions
    .map(({ id, data, expiresAt }) => {
      const current = id === currentId
      const createdAt = data.createdAt ?? now
      // The store keeps the expiry, one idle timeout after the last use it recorded (or earlier,
      // capped by the absolute timeout: then the creation time is the best it knows). Never later
      // than now, and never before the creation: a createdAt ahead of this clock (another
      // instance's clock, skewed) makes both bounds the creation time.
      const seen = current ? now : Math.min(now, expiresAt - config.SESSION_MAX_AGE)
      return {
        id: sessionHandle(config.SESSION_SECRET as string, id),
        current,
        createdAt: new Date(createdAt).toISOString(),
        lastSeenAt: new Date(Math.max(createdAt, seen)).toISOString(),
        userAgent: data.userAgent ?? null,
        device: describeDevice(data.userAgent),
        ip: data.ip ?? null
      }
    })
    .sort((a, b) => Number(b.current) - Number(a.current) || b.lastSeenAt.localeCompare(a.lastSeenAt))
}
