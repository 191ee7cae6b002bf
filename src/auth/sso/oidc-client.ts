import * as oidc from 'openid-client'
import type { FastifyBaseLogger } from 'fastify'
import { HttpError } from '../../http-error.js'
import type { SessionUser } from '../../session/session-data.js'

/** What the ID token and the provider's answers may be off by, in seconds (openid-client's default). */
export const CLOCK_TOLERANCE_S = 30
// A provider that does not answer within this is down for this request: 503, not a hung page.
const PROVIDER_TIMEOUT_S = 5
// After a failed discovery: try again on the next request no sooner than this, and in the background.
const RETRY_FIRST_MS = 1000
const RETRY_MAX_MS = 30_000
const MAX_NAME_LENGTH = 255

export interface OidcSettings {
  issuer: string
  clientId: string
  clientSecret: string
  /** PUBLIC_URL: the redirect URIs are built from it. */
  publicUrl: string
  scopes: string
}

/** What the callback needs, kept in the pre-login session between /auth/login and /auth/callback. */
export interface PendingLogin {
  state: string
  nonce: string
  codeVerifier: string
  returnTo: string
  /** ms since the epoch: a login left half-way is refused after LOGIN_WINDOW_MS. */
  startedAt: number
}

/** The provider's tokens, kept in the session row on the server; never sent to the browser. */
export interface ProviderTokens {
  idToken: string
  accessToken: string
  refreshToken?: string
  /** ms since the epoch; absent when the provider did not say. */
  accessTokenExpiresAt?: number
  /** The provider's session id (`sid` of the ID token): back-channel logout names it. */
  sid?: string
}

/** The provider's answer for a completed login. */
export interface CompletedLogin {
  user: Required<SessionUser>
  tokens: ProviderTokens
}

/**
 * The relying party: the provider's metadata (discovered once, retried until it answers) and the
 * steps of the Authorization Code flow with PKCE, through openid-client. Every failure to reach
 * the provider is a 503 with Retry-After; what the provider or its tokens get wrong is a 400.
 */
export class OidcClient {
  private configuration?: oidc.Configuration
  private discovering?: Promise<oidc.Configuration>
  private nextAttemptAt = 0
  private retryDelayMs = RETRY_FIRST_MS
  private retryTimer?: NodeJS.Timeout
  private closed = false

  constructor (readonly settings: OidcSettings, private readonly log: FastifyBaseLogger) {}

  get redirectUri (): string { return `${this.settings.publicUrl}/auth/callback` }
  get postLogoutRedirectUri (): string { return `${this.settings.publicUrl}/` }

  /** Starts discovery without waiting for it: a provider that is down must not stop the server. */
  start (): void {
    this.discover().catch(() => {})
  }

  close (): void {
    this.closed = true
    clearTimeout(this.retryTimer)
  }

  /** The provider's configuration, or a 503 while it cannot be discovered. */
  async ready (): Promise<oidc.Configuration> {
    if (this.configuration) return this.configuration
    if (!this.discovering && Date.now() < this.nextAttemptAt) throw providerUnavailable()
    try {
      return await this.discover()
    } catch {
      throw providerUnavailable()
    }
  }

  private discover (): Promise<oidc.Configuration> {
    this.discovering ??= this.runDiscovery().finally(() => { this.discovering = undefined })
    return this.discovering
  }

  private async runDiscovery (): Promise<oidc.Configuration> {
    clearTimeout(this.retryTimer)
    const { issuer, clientId, clientSecret } = this.settings
    try {
      const url = new URL(issuer)
      const configuration = await oidc.discovery(url, clientId, { [oidc.clockTolerance]: CLOCK_TOLERANCE_S },
        oidc.ClientSecretBasic(clientSecret), {
          timeout: PROVIDER_TIMEOUT_S,
          // Signatures of ID tokens checked against the provider's keys, even though they come
          // straight from its token endpoint (openid-client trusts TLS for those by default).
          // config.ts allows plain http only for a provider on this machine.
          execute: [oidc.enableNonRepudiationChecks, ...(url.protocol === 'http:' ? [oidc.allowInsecureRequests] : [])]
        })
      configuration.timeout = PROVIDER_TIMEOUT_S
      this.configuration = configuration
      this.log.info({ issuer: configuration.serverMetadata().issuer }, 'identity provider discovered: single sign-on is on')
      return configuration
    } catch (error) {
      this.nextAttemptAt = Date.now() + RETRY_FIRST_MS
      this.log.warn({ issuer, error: describeProviderError(error), retryInMs: this.retryDelayMs },
        'identity provider discovery failed: SSO routes answer 503 until it succeeds')
      if (!this.closed) {
        this.retryTimer = setTimeout(() => this.start(), this.retryDelayMs).unref()
        this.retryDelayMs = Math.min(this.retryDelayMs * 2, RETRY_MAX_MS)
      }
      throw error
    }
  }

  /** Where to send the browser, and what its callback must find in the session. */
  async beginLogin (returnTo: string): Promise<{ url: URL, pending: PendingLogin }> {
    const configuration = await this.ready()
    const pending: PendingLogin = {
      state: oidc.randomState(),
      nonce: oidc.randomNonce(),
      codeVerifier: oidc.randomPKCECodeVerifier(),
      returnTo,
      startedAt: Date.now()
    }
    const url = oidc.buildAuthorizationUrl(configuration, {
      redirect_uri: this.redirectUri,
      scope: this.settings.scopes,
      response_type: 'code',
      code_challenge: await oidc.calculatePKCECodeChallenge(pending.codeVerifier),
      code_challenge_method: 'S256',
      state: pending.state,
      nonce: pending.nonce
    })
    return { url, pending }
  }

  /**
   * Exchanges the callback's code (state, PKCE verifier and nonce checked; the ID token's issuer,
   * audience, signature and expiry checked by openid-client) for the user and the tokens.
   */
  async completeLogin (search: string, pending: PendingLogin): Promise<CompletedLogin> {
    const configuration = await this.ready()
    const tokens = await this.call(() => oidc.authorizationCodeGrant(configuration, new URL(`${this.redirectUri}${search}`), {
      pkceCodeVerifier: pending.codeVerifier,
      expectedState: pending.state,
      expectedNonce: pending.nonce,
      idTokenExpected: true
    }))
    const claims = tokens.claims()
    if (!claims || !tokens.id_token) throw new HttpError(400, 'The identity provider sent no ID token')
    const name = [claims.preferred_username, claims.email, claims.sub]
      .find((value): value is string => typeof value === 'string' && value.length > 0) as string
    return {
      user: { name: name.slice(0, MAX_NAME_LENGTH), sub: claims.sub, iss: claims.iss },
      tokens: this.tokensFrom(tokens, { idToken: tokens.id_token, sid: typeof claims.sid === 'string' ? claims.sid : undefined })
    }
  }

  /**
   * New tokens for the refresh token of `subject`'s login. Rejects with a ProviderRefusedError whose
   * `endsLogin` is set when the provider refused the grant (revoked, expired, ended there) or
   * answered for another subject; with an HttpError for everything that says nothing about the
   * login (the provider unreachable, its answer unusable, this client misconfigured).
   */
  async refresh (current: ProviderTokens & { refreshToken: string }, subject: string): Promise<ProviderTokens> {
    const configuration = await this.ready()
    const tokens = await this.call(() => oidc.refreshTokenGrant(configuration, current.refreshToken))
    // OpenID Connect Core 12.2: a refreshed ID token is of the same subject.
    if (tokens.id_token && tokens.claims()?.sub !== subject) throw new ProviderRefusedError('the refreshed ID token names another subject', 'subject')
    // A provider may rotate the refresh token and the ID token, or keep them.
    return this.tokensFrom(tokens, { ...current, idToken: tokens.id_token ?? current.idToken })
  }

  /** The provider's end-session URL (RP-initiated logout), or undefined if it has none. */
  async endSessionUrl (idToken: string | undefined): Promise<URL | undefined> {
    const configuration = await this.ready()
    if (!configuration.serverMetadata().end_session_endpoint) return undefined
    return oidc.buildEndSessionUrl(configuration, {
      post_logout_redirect_uri: this.postLogoutRedirectUri,
      ...(idToken ? { id_token_hint: idToken } : {})
    })
  }

  private tokensFrom (response: oidc.TokenEndpointResponse & oidc.TokenEndpointResponseHelpers, base: Pick<ProviderTokens, 'idToken' | 'sid' | 'refreshToken'>): ProviderTokens {
    const expiresIn = response.expiresIn()
    return {
      idToken: base.idToken,
      accessToken: response.access_token,
      refreshToken: response.refresh_token ?? base.refreshToken,
      accessTokenExpiresAt: expiresIn === undefined ? undefined : Date.now() + expiresIn * 1000,
      ...(base.sid ? { sid: base.sid } : {})
    }
  }

  /** Runs a request to the provider; its failure as the answer it calls for (classifyFailure). */
  private async call<T> (request: () => Promise<T>): Promise<T> {
    try {
      return await request()
    } catch (error) {
      throw classifyFailure(error)
    }
  }
}

// OAuth errors of the token endpoint that say this client is set up wrong: no user's fault.
const CLIENT_SETUP_ERRORS = new Set(['invalid_client', 'unauthorized_client', 'unsupported_grant_type', 'invalid_scope'])
// ... and that say the provider is in trouble.
const PROVIDER_TROUBLE_ERRORS = new Set(['server_error', 'temporarily_unavailable'])

/**
 * Who a failure is about. The provider not answering, or answering as no OAuth server would (a
 * proxy's HTML, a cut body, a 429, a 5xx, server_error): 503. This client set up wrong (a wrong
 * secret): 500, logged as an error. Anything else is about this login (a replayed code, a state,
 * nonce or ID token that does not check out, the person cancelling): a ProviderRefusedError, 400.
 * What arrives in the callback's URL (`error=…`) is the browser's to say, so it is never a 503 or a
 * 500 there: anybody could send it, and the pending login is spent by it.
 */
function classifyFailure (error: unknown): Error {
  const status = statusOf(error)
  if (status === 401 && !(error instanceof oidc.ResponseBodyError && error.error === 'invalid_grant')) {
    return clientMisconfigured(error instanceof oidc.ResponseBodyError ? describeProviderError(error) : 'the provider refused this client\'s credentials')
  }
  if (isUnreachable(error) || (status !== undefined && (status >= 500 || status === 408 || status === 429))) return providerUnavailable()
  if (error instanceof oidc.ResponseBodyError) {
    if (PROVIDER_TROUBLE_ERRORS.has(error.error)) return providerUnavailable()
    if (CLIENT_SETUP_ERRORS.has(error.error)) return clientMisconfigured(describeProviderError(error))
    return new ProviderRefusedError(describeProviderError(error), error.error === 'invalid_grant' ? 'grant' : undefined)
  }
  return new ProviderRefusedError(describeProviderError(error))
}

/** The HTTP status of the provider's answer a failure is about, if it is about one. */
function statusOf (error: unknown): number | undefined {
  if (error instanceof oidc.ResponseBodyError || error instanceof oidc.WWWAuthenticateChallengeError) return error.status
  const cause = (error as Error | undefined)?.cause
  return cause instanceof Response ? cause.status : undefined
}

function clientMisconfigured (reason: string): HttpError {
  return new HttpError(500, `Single sign-on is misconfigured: ${reason} (check OIDC_CLIENT_ID, OIDC_CLIENT_SECRET and the client's settings at the provider)`)
}

/**
 * The provider, or its answer, refused: an expired or replayed code, a wrong state, nonce, issuer or
 * audience, a revoked refresh token. The message names the check; it never holds a token.
 */
export class ProviderRefusedError extends HttpError {
  /**
   * @param endsLogin whether the login is over: the provider refused the grant itself ('grant'), or
   * answered a refresh for another subject ('subject').
   */
  constructor (reason: string, readonly endsLogin?: 'grant' | 'subject') {
    super(400, `Single sign-on failed: ${reason}`)
  }
}

/** 503 with Retry-After: the provider did not answer, or answered with a server error. */
export function providerUnavailable (): HttpError {
  return new HttpError(503, 'The identity provider is unreachable; try again shortly', { headers: { 'retry-after': '5' } })
}

/**
 * Whether a failure means the provider did not answer as an OAuth server: a refused or cut
 * connection, a timeout, a body cut off or not JSON, an answer that is not OAuth at all (HTML,
 * plain text: openid-client keeps the Response as the cause). openid-client wraps some of these
 * (OAUTH_TIMEOUT, OAUTH_PARSE_ERROR), so the causes are looked at too.
 */
function isUnreachable (error: unknown): boolean {
  for (let cause = error, depth = 0; cause !== undefined && cause !== null && depth < 4; cause = (cause as Error).cause, depth++) {
    const { name, code } = cause as { name?: string, code?: string }
    if (name === 'TimeoutError' || name === 'AbortError') return true
    if (code === 'OAUTH_TIMEOUT' || code === 'OAUTH_ABORT' || code === 'OAUTH_PARSE_ERROR' || code?.startsWith('UND_ERR')) return true
    if (cause instanceof TypeError && /fetch failed|terminated/i.test(cause.message)) return true
    if (cause instanceof Response) return true
  }
  return false
}

/** A one-line reason for logs and 400s: openid-client's message, or the provider's error code. */
export function describeProviderError (error: unknown): string {
  if (error instanceof oidc.ResponseBodyError || error instanceof oidc.AuthorizationResponseError) {
    return `${error.error}${error.error_description ? `: ${error.error_description}` : ''}`
  }
  if (isUnreachable(error)) return `provider unreachable (${String((error as Error).cause ?? (error as Error).message)})`
  if (!(error instanceof Error)) return String(error)
  // openid-client's own message is generic ("invalid response encountered"); its cause names the check.
  return error.cause instanceof Error ? `${error.message}: ${error.cause.message}` : error.message
}
