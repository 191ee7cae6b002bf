import type { SessionUser } from '../session/session-data.js'

/**
 * Checks a username and password. `buildApp({ authenticator })` accepts any implementation (a
 * database, LDAP, an identity provider); the htpasswd file is the built-in one. Implementations
 * should take about the same time for an unknown user as for a wrong password.
 */
export interface Authenticator {
  /** The user, or null for an unknown user or a wrong password (the caller answers both alike). */
  verify (username: string, password: string): Promise<SessionUser | null>
}
