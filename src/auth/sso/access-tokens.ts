import { promisify } from 'node:util'
import type { FastifyRequest } from 'fastify'
import { HttpError } from '../../http-error.js'
import type { ManagedStore } from '../../session/managed-store.js'
import type { RequestSession } from '../../session/session-data.js'
import { ProviderRefusedError, type OidcClient, type ProviderTokens } from './oidc-client.js'

/** An access token that expires sooner than this is refreshed before it is handed out. */
export const REFRESH_MARGIN_MS = 30_000
// A request that read the session before a concurrent refresh was saved still holds the old tokens:
// for this long it gets that refresh's result instead of spending the refresh token a second time
// (providers that rotate refresh tokens refuse the second use, and would end the login).
const REUSE_RESULT_MS = 30_000

type RefreshableTokens = ProviderTokens & { refreshToken: string }

/**
 * Hands routes a valid access token for the request's SSO user, refreshing it with the refresh
 * token when it is near expiry: once per access token in this process, however many requests ask
 * at once. New tokens are saved at once, whatever the route then answers (a 502 of its own must not
 * lose a refresh token the provider has already rotated). When the provider refuses the refresh
 * (the login was ended or revoked there), the local session ends too and the route answers 401.
 */
export class AccessTokens {
  private readonly refreshes = new Map<string, Promise<ProviderTokens>>()

  constructor (private readonly client: OidcClient, private readonly store: ManagedStore) {}

  async of (request: FastifyRequest): Promise<string> {
    const session = request.raw.session
    const tokens = session?.sso
    const subject = session?.user?.sub
    if (!session || !tokens || subject === undefined) throw new HttpError(401, 'Log in with single sign-on first')
    const expiresAt = tokens.accessTokenExpiresAt
    if (expiresAt === undefined || expiresAt - Date.now() > REFRESH_MARGIN_MS) return tokens.accessToken
    if (!tokens.refreshToken) {
      // Nothing to refresh with (the provider issued no refresh token): the token serves until it
      // expires, then the user logs in again; the session itself lives on.
      if (expiresAt > Date.now()) return tokens.accessToken
      throw new HttpError(401, 'The access token expired and the identity provider gave no refresh token: log in with single sign-on again')
    }
    try {
      session.sso = await this.refreshOnce(tokens as RefreshableTokens, subject)
    } catch (error) {
      if (!(error instanceof ProviderRefusedError)) throw error
      if (!error.endsLogin) {
        request.log.warn({ reason: error.message }, 'the identity provider\'s answer to a token refresh could not be used')
        throw new HttpError(502, 'The identity provider\'s answer to a token refresh could not be used; try again')
      }
      // Another request or instance may have refreshed first and spent the refresh token this one
      // holds: its tokens are in the row.
      const stored = await this.storedTokens(request.raw.sessionID)
      if (stored && stored.refreshToken !== tokens.refreshToken && stored.accessToken !== tokens.accessToken) {
        session.sso = stored
        return stored.accessToken
      }
      request.log.info({ reason: error.message }, 'the identity provider refused a token refresh: ending the session')
      await promisify(session.destroy.bind(session))()
      throw new HttpError(401, 'The identity provider ended this login: log in again')
    }
    await saveNow(session)
    return session.sso.accessToken
  }

  private refreshOnce (tokens: RefreshableTokens, subject: string): Promise<ProviderTokens> {
    // By the access token it replaces: requests holding the same one share its refresh; a request
    // holding the result (the refresh token may stay the same) starts the next one.
    const key = tokens.accessToken
    let refresh = this.refreshes.get(key)
    if (!refresh) {
      refresh = this.client.refresh(tokens, subject)
      this.refreshes.set(key, refresh)
      const forget = () => { setTimeout(() => this.refreshes.delete(key), REUSE_RESULT_MS).unref() }
      // A failure that may pass (the provider unreachable) is not kept: the next request tries again.
      refresh.then(forget, (error: unknown) => {
        if (error instanceof ProviderRefusedError && error.endsLogin) forget()
        else this.refreshes.delete(key)
      })
    }
    return refresh
  }

  private async storedTokens (sessionId: string | undefined): Promise<ProviderTokens | undefined> {
    if (sessionId === undefined) return undefined
    const data = await promisify(this.store.get.bind(this.store))(sessionId)
    return data?.sso
  }
}

function saveNow (session: RequestSession): Promise<void> {
  return promisify(session.save.bind(session))()
}
