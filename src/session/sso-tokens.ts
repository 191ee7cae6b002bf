import type { SessionData } from 'express-session'
import { parseStoredData, sessionShapeProblem } from './stored-data.js'

// A session's SSO tokens change under it: a token refresh (on any instance) saves new ones while
// other requests of the same browser still hold the ones they read. A save of such a request that
// wrote its whole session back would put the old tokens over the new, and a provider that rotates
// refresh tokens ends the whole login when the old refresh token is used again. So the stores
// write a request's tokens only when the request changed them; otherwise they keep the row's.

/**
 * Whether saving `session` must not overwrite the tokens in the row: it carries tokens, and they
 * are the ones in `readText`, the row's text as the store read (or last wrote) it in this request.
 * Parsed only here, when such a session is saved, not on every read.
 */
export function holdsReadTokens (session: SessionData, readText: string): boolean {
  // Only this project's tokens: an `sso` field of an app's own is written as it is.
  const tokens = session.sso as unknown
  if (typeof tokens !== 'object' || tokens === null || typeof (tokens as { accessToken?: unknown }).accessToken !== 'string') return false
  return JSON.stringify(parseStoredData(readText)?.sso) === JSON.stringify(tokens)
}

/**
 * Puts the tokens the row holds now (`currentData`: its data column as read, of any type) on
 * `session`, which is about to be written over it; a row that is not a session of this project's
 * shape (edited by hand) gives nothing.
 */
export function adoptStoredTokens (session: SessionData, currentData: unknown): void {
  const current = parseStoredData(currentData)
  if (!current || sessionShapeProblem(current) !== undefined) return
  if (current.sso === undefined) delete (session as Partial<SessionData>).sso
  else session.sso = current.sso as unknown as SessionData['sso']
}
