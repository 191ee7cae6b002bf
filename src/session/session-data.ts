import type { Session, SessionData } from 'express-session'
import type { PendingLogin, ProviderTokens } from '../auth/sso/oidc-client.js'

/** What this project keeps in a session, beside express-session's `cookie`. */
declare module 'express-session' {
  interface SessionData {
    /** ms since the epoch when the session was created (reset at login). */
    createdAt: number
    /** Present once the client has logged in. */
    user: SessionUser
    /** The User-Agent and address the client logged in from, for the list of sessions. */
    userAgent: string
    ip: string
    /** The client's own JSON state (PUT /session/state), at most 4 KiB serialized. */
    state: unknown
    /** An SSO login between /auth/login and /auth/callback (state, nonce, PKCE verifier). */
    ssoLogin: PendingLogin
    /** The identity provider's tokens for an SSO user; kept on the server, never sent to the browser. */
    sso: ProviderTokens
  }
}

/** Who is logged in: `name` to show; `iss` and `sub` for a provider's users (local users have neither). */
export interface SessionUser {
  name: string
  iss?: string
  sub?: string
}

/** The session as routes see it: express-session's object with this project's fields. */
export type RequestSession = Session & Partial<SessionData>

// The bridge hands Fastify the raw Node request that express-session decorated; type it there so
// routes read `request.raw.session` without casts. It is absent when no session applies to the
// request (for example a Secure cookie over plain HTTP).
declare module 'node:http' {
  interface IncomingMessage {
    session?: RequestSession
    sessionID?: string
  }
}
