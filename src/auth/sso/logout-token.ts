import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose'
import type { Configuration } from 'openid-client'
import { CLOCK_TOLERANCE_S } from './oidc-client.js'

/** OpenID Connect Back-Channel Logout 1.0, section 2.4: the event a logout token must carry. */
export const BACKCHANNEL_LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout'
/** A logout token issued longer ago than this (plus the tolerance) is stale: sent again, or stolen. */
export const LOGOUT_TOKEN_MAX_AGE_S = 120
const JWKS_TIMEOUT_MS = 5000
// jose's errors that are about the token itself (its form, claims, algorithm, signature, key id).
const TOKEN_FAULTS = new Set([
  'ERR_JWT_CLAIM_VALIDATION_FAILED', 'ERR_JWT_EXPIRED', 'ERR_JWT_INVALID', 'ERR_JWS_INVALID',
  'ERR_JOSE_ALG_NOT_ALLOWED', 'ERR_JOSE_NOT_SUPPORTED', 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED',
  'ERR_JWKS_NO_MATCHING_KEY', 'ERR_JWKS_MULTIPLE_MATCHING_KEYS'
])

/** Who the provider logged out: its session (`sid`), its subject (`sub`), or both. */
export interface LogoutRequest {
  iss: string
  sub?: string
  sid?: string
  /** The token's id: a second use of it is a replay. */
  jti: string
}

/** A logout token this relying party must not act on; `message` says which check failed. */
export class InvalidLogoutTokenError extends Error {
  override name = 'InvalidLogoutTokenError'
}

/**
 * Checks a logout token as section 2.6 of the specification lists: signature with the provider's
 * keys (fetched from its jwks_uri, cached, refetched for an unknown key id), issuer, audience,
 * `iat` within LOGOUT_TOKEN_MAX_AGE_S, `exp` if present, a `jti`, the back-channel logout event,
 * `sub` or `sid`, and no `nonce` (which would make an ID token pass for a logout token). Replay is
 * the caller's to check, against what every instance has seen (the store).
 */
export class LogoutTokenVerifier {
  private keys?: ReturnType<typeof createRemoteJWKSet>

  constructor (private readonly clientId: string) {}

  async verify (token: string, configuration: Configuration): Promise<LogoutRequest> {
    const metadata = configuration.serverMetadata()
    if (!metadata.jwks_uri) throw new InvalidLogoutTokenError('the provider publishes no keys (jwks_uri)')
    this.keys ??= createRemoteJWKSet(new URL(metadata.jwks_uri), { timeoutDuration: JWKS_TIMEOUT_MS })
    let payload: JWTPayload
    try {
      ({ payload } = await jwtVerify(token, this.keys, {
        issuer: metadata.issuer,
        audience: this.clientId,
        // Asymmetric signatures only: "none" and an HMAC keyed with a public key are refused.
        algorithms: metadata.id_token_signing_alg_values_supported?.filter((alg) => alg !== 'none' && !alg.startsWith('HS')) ?? ['RS256'],
        maxTokenAge: LOGOUT_TOKEN_MAX_AGE_S,
        clockTolerance: CLOCK_TOLERANCE_S,
        requiredClaims: ['iat', 'jti']
      }))
    } catch (error) {
      // What is wrong with the token is a 400; failing to get the provider's keys (a timeout, a
      // JWKS endpoint answering 500) is the provider's trouble, and the caller answers 503.
      if (error instanceof joseErrors.JOSEError && TOKEN_FAULTS.has(error.code)) {
        throw new InvalidLogoutTokenError(`logout token refused: ${error.message}`)
      }
      throw error
    }
    const events = payload.events as Record<string, unknown> | undefined
    const event = events?.[BACKCHANNEL_LOGOUT_EVENT]
    if (typeof event !== 'object' || event === null || Array.isArray(event)) {
      throw new InvalidLogoutTokenError('logout token refused: no back-channel logout event')
    }
    if ('nonce' in payload) throw new InvalidLogoutTokenError('logout token refused: it has a nonce (an ID token is not a logout token)')
    // As for ID tokens (Core 3.1.3.7): a token for several audiences must name this client as azp,
    // and an azp, when there is one, must be this client.
    const audiences = Array.isArray(payload.aud) ? payload.aud.length : 1
    if ((audiences > 1 || payload.azp !== undefined) && payload.azp !== this.clientId) {
      throw new InvalidLogoutTokenError('logout token refused: its azp is not this client')
    }
    const sub = typeof payload.sub === 'string' && payload.sub.length > 0 ? payload.sub : undefined
    const sid = typeof payload.sid === 'string' && payload.sid.length > 0 ? payload.sid : undefined
    if (!sub && !sid) throw new InvalidLogoutTokenError('logout token refused: it names neither sub nor sid')
    if (typeof payload.jti !== 'string' || payload.jti.length === 0) throw new InvalidLogoutTokenError('logout token refused: no jti')
    return { iss: metadata.issuer, sub, sid, jti: payload.jti }
  }
}
