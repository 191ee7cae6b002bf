import { createHash } from 'node:crypto'
import type { SessionUser } from './session-data.js'

/** The issuer of users that no identity provider vouches for: the htpasswd file, a consumer's Authenticator. */
export const LOCAL_ISSUER = 'local'

const MAX_NAME_LENGTH = 255

/** A value of the shape `session.user` must have: `{ name }`, and `iss`/`sub` for a provider's users. */
export function isSessionUser (value: unknown): value is SessionUser {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false
  const { name, iss, sub } = value as Record<string, unknown>
  return typeof name === 'string' && name.length > 0 && name.length <= MAX_NAME_LENGTH &&
    (iss === undefined || typeof iss === 'string') && (sub === undefined || typeof sub === 'string')
}

/**
 * The value of the indexed `user_key` column: who the user is, as (issuer, subject), so an htpasswd
 * "ann" and a provider's "ann" never share a list or a revocation. Hashed to a fixed width because
 * subjects and issuer URLs have no useful length limit. The store writes it from `session.user` on
 * every save, so nothing else the session holds can blank or hide it.
 */
export function userKey (user: SessionUser): string {
  return createHash('sha256').update(JSON.stringify([user.iss ?? LOCAL_ISSUER, user.sub ?? user.name])).digest('base64url')
}

/** The user_key the store writes for stored data: its user's key, '' when it has none (or data could not be read). */
export function userKeyOf (session: { user?: unknown } | undefined): string {
  return session && isSessionUser(session.user) ? userKey(session.user) : ''
}
