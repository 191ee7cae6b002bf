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

/**
 * Finds the logged-in user in a session's stored data, or says there is none (undefined). The
 * stores use one such function for every user key they compute (saves, reads, the user's list,
 * revocations, the background keying) and the bridge for `session.user`, so sessions an earlier
 * app wrote with its own user shape (`{ id, username }`, say) count as their user's everywhere.
 * It must be pure and must not throw; what it returns is used only when it is a SessionUser.
 */
export type SessionUserMapper = (data: Record<string, unknown>) => SessionUser | undefined

/** The project's own shape: `session.user` when it is `{ name, iss?, sub? }`. */
export const defaultSessionUser: SessionUserMapper = (data) => isSessionUser(data.user) ? data.user : undefined

/**
 * The user of stored data under a mapper: the project's own `{ name }` shape when `user` has it,
 * else what the mapper finds (checked, and undefined if it throws). Sessions the project writes
 * always have its shape, so a mapper only ever sees data of another shape.
 */
export function sessionUserOf (data: Record<string, unknown> | undefined, mapper: SessionUserMapper = defaultSessionUser): SessionUser | undefined {
  if (!data) return undefined
  if (isSessionUser(data.user)) return data.user
  if (mapper === defaultSessionUser) return undefined
  try {
    const user = mapper(data)
    return isSessionUser(user) ? user : undefined
  } catch {
    return undefined
  }
}

/**
 * The user_key the store writes for stored data: its user's key; '' when it has no `user` (or could
 * not be read); NULL when it has a `user` this process cannot map. NULL means "not known yet": every
 * user's list and revocation still reads such a row and checks it against its data, and a process
 * with a mapper for it keys it. A mapper that reads another field (`passport.user`) is not covered
 * by this: a process without it keys such data '', which is why `npm run sessions` keys no rows
 * and every server on a table needs the same mapper.
 */
export function userKeyOf (session: object | undefined, mapper: SessionUserMapper = defaultSessionUser): string | null {
  const data = session as Record<string, unknown> | undefined
  const user = sessionUserOf(data, mapper)
  if (user) return userKey(user)
  return data?.user === undefined || data.user === null ? '' : null
}

/**
 * The value of the indexed `sso_key` column: the identity provider's login session a session came
 * from, as (issuer, `sid`), or NULL for a session without one. A back-channel logout token may name
 * only that login session (`sid` without `sub`); its sessions are found by this key.
 */
export function providerLoginKey (issuer: string, sid: string): string {
  return createHash('sha256').update(JSON.stringify([issuer, sid])).digest('base64url')
}

/** The sso_key the store writes for stored data (see providerLoginKey). */
export function providerLoginKeyOf (session: object): string | null {
  const { user, sso } = session as { user?: { iss?: unknown }, sso?: { sid?: unknown } }
  return typeof user?.iss === 'string' && typeof sso?.sid === 'string' ? providerLoginKey(user.iss, sso.sid) : null
}
