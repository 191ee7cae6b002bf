import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import type { SessionData } from 'express-session'
import type { FastifyRequest } from 'fastify'
import { HttpError } from '../../http-error.js'
import { SessionEndedError, type ManagedStore } from '../../session/managed-store.js'
import type { SessionUser } from '../../session/session-data.js'
import { sessionShapeProblem } from '../../session/stored-data.js'
import { ProviderRefusedError, type OidcClient, type ProviderTokens } from './oidc-client.js'

/** An access token that expires sooner than this is refreshed before it is handed out. */
export const REFRESH_MARGIN_MS = 30_000
// A request that read the session before a concurrent refresh was saved still holds the old tokens:
// for this long it gets that refresh's result instead of spending the refresh token a second time
// (providers that rotate refresh tokens refuse the second use, and would end the login).
const REUSE_RESULT_MS = 30_000
// A refresh is claimed across instances for longer than it can take (the provider's 5-s timeout,
// then the save); the others wait for its tokens about as long, looking at the row ever less often.
const REFRESH_CLAIM_MS = 20_000
const WAIT_FOR_OTHER_REFRESH_MS = 8000
const OTHER_REFRESH_POLL_MS = 50
const MAX_OTHER_REFRESH_POLL_MS = 400

type RefreshableTokens = ProviderTokens & { refreshToken: string }

/**
 * Hands routes a valid access token for the request's SSO user, refreshing it with the refresh
 * token when it is near expiry: once per access token across every instance on the store, however
 * many requests ask at once. The new tokens are written into the stored session at once, and
 * nothing else with them: a route that then fails (a 502 of its own) neither loses a refresh token
 * the provider has rotated nor saves its other changes. When the provider refuses the refresh (the login was ended or
 * revoked there), the local session ends too and the route answers 401.
 */
export class AccessTokens {
  private readonly refreshes = new Map<string, Promise<ProviderTokens>>()

  constructor (private readonly client: OidcClient, private readonly store: ManagedStore) {}

  async of (request: FastifyRequest): Promise<string> {
    const session = request.raw.session
    const sessionId = request.raw.sessionID
    const tokens = session?.sso
    const user = session?.user
    if (!session || !tokens || sessionId === undefined || user?.sub === undefined) throw new HttpError(401, 'Log in with single sign-on first')
    const expiresAt = tokens.accessTokenExpiresAt
    if (expiresAt === undefined || expiresAt - Date.now() > REFRESH_MARGIN_MS) return tokens.accessToken
    if (!tokens.refreshToken) {
      // Nothing to refresh with (the provider issued no refresh token): the token serves until it
      // expires, then the user logs in again; the session itself lives on.
      if (expiresAt > Date.now()) return tokens.accessToken
      throw new HttpError(401, 'The access token expired and the identity provider gave no refresh token: log in with single sign-on again')
    }
    try {
      session.sso = await this.refreshOnce(sessionId, tokens as RefreshableTokens, { ...user, sub: user.sub })
      return session.sso.accessToken
    } catch (error) {
      if (error instanceof SessionEndedError) {
        // Logged out or revoked while the refresh ran: as the bridge does, nothing is written back.
        delete request.raw.session
        throw new HttpError(error.statusCode, error.message)
      }
      if (!(error instanceof ProviderRefusedError)) throw error
      if (!error.endsLogin) {
        request.log.warn({ reason: error.message }, 'the identity provider\'s answer to a token refresh could not be used')
        throw new HttpError(502, 'The identity provider\'s answer to a token refresh could not be used; try again')
      }
      // A refused grant may only mean that another request or instance refreshed first and spent
      // the refresh token this one holds: then its fresh tokens are in the row.
      const stored = error.endsLogin === 'grant' ? await this.newerStoredTokens(sessionId, tokens, user) : undefined
      if (stored) {
        session.sso = stored
        return stored.accessToken
      }
      request.log.info({ reason: error.message }, 'the identity provider refused a token refresh: ending the session')
      await promisify(session.destroy.bind(session))()
      throw new HttpError(401, 'The identity provider ended this login: log in again')
    }
  }

  private refreshOnce (sessionId: string, tokens: RefreshableTokens, user: SessionUser & { sub: string }): Promise<ProviderTokens> {
    // By the access token it replaces: requests holding the same one share its refresh; a request
    // holding the result (the refresh token may stay the same) starts the next one.
    const key = tokens.accessToken
    let refresh = this.refreshes.get(key)
    if (!refresh) {
      refresh = this.refreshAcrossInstances(sessionId, tokens, user)
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

  /**
   * One refresh per access token on every instance sharing the store: the first to claim it asks
   * the provider; the others wait for its tokens to appear in the row (round-robin load balancing
   * sends one browser's parallel requests to different instances, and a provider that rotates
   * refresh tokens ends the whole login when one is used twice).
   */
  private async refreshAcrossInstances (sessionId: string, tokens: RefreshableTokens, user: SessionUser & { sub: string }): Promise<ProviderTokens> {
    const claim = `token refresh ${tokens.accessToken}`
    const giveUpAt = Date.now() + WAIT_FOR_OTHER_REFRESH_MS
    for (let attempt = 0; ; attempt++) {
      if (await this.store.claimOnce(claim, REFRESH_CLAIM_MS)) return await this.refreshClaimed(claim, sessionId, tokens, user)
      const stored = await this.read(sessionId)
      // Ended meanwhile: logged out, or the provider refused the other request's refresh.
      if (!stored) throw new SessionEndedError()
      const theirs = newerTokensIn(stored, tokens, user)
      if (theirs) return theirs
      if (Date.now() >= giveUpAt) throw new HttpError(503, 'This login\'s tokens are being refreshed by another request; try again', { headers: { 'retry-after': '1' } })
      await sleep(Math.min(OTHER_REFRESH_POLL_MS * 2 ** attempt, MAX_OTHER_REFRESH_POLL_MS))
    }
  }

  private async refreshClaimed (claim: string, sessionId: string, held: RefreshableTokens, user: SessionUser & { sub: string }): Promise<ProviderTokens> {
    let answered = false
    try {
      // A claim that lapsed (its holder died, or finished long ago): what it saved is in the row,
      // and a refresh starts from the row's tokens, never from older ones this request holds.
      const stored = await this.read(sessionId)
      if (!stored) throw new SessionEndedError()
      const saved = newerTokensIn(stored, held, user)
      if (saved) return saved
      const current = stored.sso
      const tokens = current?.refreshToken && current.refreshToken !== held.refreshToken && sameUser(stored, user) ? current as RefreshableTokens : held
      const fresh = await this.client.refresh(tokens, user.sub)
      answered = true
      // The provider may have spent the refresh token: its answer is saved, once more if need be.
      await this.saveTokens(sessionId, fresh).catch(async (error: unknown) => {
        if (error instanceof SessionEndedError) throw error
        await this.saveTokens(sessionId, fresh)
      })
      return fresh
    } catch (error) {
      // A failure that may pass, before the provider answered, gives the claim back, so a waiting
      // request or the next one retries.
      if (!answered && !(error instanceof ProviderRefusedError && error.endsLogin)) await this.store.releaseOnce(claim).catch(() => {})
      throw error
    }
  }

  /** Writes `tokens` into the stored session as it is in the store; rejects with SessionEndedError if it is gone. */
  private async saveTokens (sessionId: string, tokens: ProviderTokens): Promise<void> {
    const stored = await this.read(sessionId)
    if (!stored) throw new SessionEndedError()
    stored.sso = tokens
    await promisify(this.store.set.bind(this.store))(sessionId, stored)
  }

  /** The row's tokens, if they are another refresh's of the same user and still good for a while. */
  private async newerStoredTokens (sessionId: string, held: ProviderTokens, user: SessionUser): Promise<ProviderTokens | undefined> {
    const stored = await this.read(sessionId)
    return stored ? newerTokensIn(stored, held, user) : undefined
  }

  private async read (sessionId: string): Promise<SessionData | undefined> {
    return await promisify(this.store.get.bind(this.store))(sessionId) ?? undefined
  }
}

/**
 * The tokens of `stored`, if they are another refresh's of the same user than `held` (another
 * access token, or the same one with a later expiry), and still good for a while.
 */
function newerTokensIn (stored: SessionData, held: ProviderTokens, user: SessionUser): ProviderTokens | undefined {
  const tokens = stored.sso
  if (!tokens || !sameUser(stored, user)) return undefined
  const renewed = tokens.accessToken !== held.accessToken || (tokens.accessTokenExpiresAt ?? 0) > (held.accessTokenExpiresAt ?? 0)
  if (!renewed) return undefined
  const expiresAt = tokens.accessTokenExpiresAt
  return expiresAt === undefined || expiresAt - Date.now() > REFRESH_MARGIN_MS ? tokens : undefined
}

function sameUser (stored: SessionData, user: SessionUser): boolean {
  return sessionShapeProblem(stored as unknown as Record<string, unknown>) === undefined && stored.user?.sub === user.sub && stored.user?.iss === user.iss
}
