import { importJWK, SignJWT, decodeJwt, type JWK, type JWTPayload } from 'jose'
import type { RowDataPacket } from 'mysql2/promise'
import type { Test } from 'tap'
import type { DevProvider } from '../../scripts/sso/dev-provider.js'
import { BACKCHANNEL_LOGOUT_EVENT } from '../../src/auth/sso/logout-token.js'
import type { TestDatabase } from '../helper.js'
import { sessionIdOf } from './signed-cookie.js'

// What the SSO tests read of stored sessions, and the tokens they forge or rewrite as a provider
// (or a man in the middle) would.

export interface StoredTokens { idToken: string, accessToken: string, refreshToken?: string, sid?: string, accessTokenExpiresAt?: number }

/** Every session row's parsed data, by id. */
export async function rows (db: TestDatabase): Promise<Map<string, Record<string, any>>> {
  const [found] = await db.pool.query<RowDataPacket[]>('SELECT session_id, data FROM sessions')
  return new Map(found.map((row) => [String(row.session_id), JSON.parse(String(row.data))]))
}

/** The stored tokens of every session of the SSO user `sub`. */
export async function tokensOf (db: TestDatabase, sub: string): Promise<StoredTokens[]> {
  return [...(await rows(db)).values()].filter((data) => data.user?.sub === sub).map((data) => data.sso as StoredTokens)
}

/** The session id of a login's cookie ('' when there is none). */
export function idOf (cookie: string): string {
  return sessionIdOf(cookie) ?? ''
}

/**
 * Answers requests to `url` with `answer` (until teardown), which may ask the provider itself
 * through `provider()` and change what it says.
 */
export function interceptFetch (t: Test, url: string, answer: (provider: () => Promise<Response>) => Promise<Response>) {
  const realFetch = globalThis.fetch
  globalThis.fetch = async (input, init) => {
    const target = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url
    return target === url ? await answer(() => realFetch(input, init)) : await realFetch(input, init)
  }
  t.teardown(() => { globalThis.fetch = realFetch })
}

/**
 * Rewrites the ID token in the provider's token responses, re-signed with `key` (the provider's own
 * by default): a provider, or a man in the middle, that answers with a token made for someone else.
 */
export function tamperIdTokens (t: Test, provider: DevProvider, change: (claims: JWTPayload) => void, key: JWK = provider.signingKey) {
  interceptFetch(t, `${provider.issuer}/token`, async (real) => {
    const response = await real()
    const body = await response.json() as Record<string, unknown>
    const claims = decodeJwt(String(body.id_token))
    change(claims)
    body.id_token = await new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: key.kid }).sign(await importJWK(key, 'RS256'))
    return new Response(JSON.stringify(body), { status: response.status, headers: response.headers })
  })
}

/** A logout token as the provider would sign it, with `claims` changed (undefined removes one). */
export async function logoutToken (provider: DevProvider, claims: Record<string, unknown> = {}, options: { key?: JWK, alg?: string } = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000)
  const payload: Record<string, unknown> = {
    iss: provider.issuer,
    aud: provider.clientId,
    iat: now,
    exp: now + 120,
    jti: `jti-${Math.random().toString(36).slice(2)}`,
    sub: 'ann',
    events: { [BACKCHANNEL_LOGOUT_EVENT]: {} },
    ...claims
  }
  for (const [name, value] of Object.entries(payload)) if (value === undefined) delete payload[name]
  const key = options.key ?? provider.signingKey
  const alg = options.alg ?? 'RS256'
  const secret = alg.startsWith('HS') ? new TextEncoder().encode('a-shared-secret-that-nobody-agreed-on') : await importJWK(key, alg)
  return await new SignJWT(payload).setProtectedHeader({ alg, kid: key.kid, typ: 'logout+jwt' }).sign(secret)
}
