// A local OpenID Provider (oidc-provider 9) for the SSO tests and `npm run dev:sso`: one confidential
// client, the provider's own login page (any name, any password), no consent click, back-channel
// logout, all on 127.0.0.1 over plain HTTP. Development only: in-memory storage, throwaway keys.
import { randomBytes } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { exportJWK, generateKeyPair, type JWK } from 'jose'
import type Provider from 'oidc-provider'
import type { Configuration, JWK as ProviderJWK, KoaContextWithOIDC } from 'oidc-provider'

export interface DevProviderOptions {
  /** 0 or absent: a free port. Listens on 127.0.0.1 only. */
  port?: number
  /** App base URLs (no trailing slash): each gets `${u}/auth/callback` and `${u}/` registered. */
  appUrls: string[]
  /** Default `${appUrls[0]}/auth/backchannel-logout`. */
  backchannelLogoutUri?: string
  /** Default 'session-backend'. */
  clientId?: string
  /** Default: 32 random bytes, base64url. */
  clientSecret?: string
  /** Default 300. */
  accessTokenTtlSeconds?: number
  /** A private RS256 JWK with a kid; default: a new one. */
  signingKey?: JWK
  /**
   * The claims of the account a login names (the login page takes any name as the account id), for
   * tests of a relying party that meets an account without preferred_username or email; sub is
   * always the account id. Default (`defaultAccountClaims`): preferred_username and name are the
   * id, email `${id}@example.test`.
   */
  accountClaims?: (accountId: string) => Record<string, unknown>
  /**
   * Every refresh rotates the refresh token, and using a spent one revokes the whole grant (what
   * Keycloak's "Revoke Refresh Token" does). Default: oidc-provider's policy, which keeps a
   * confidential client's refresh token until 70% of its life has passed.
   */
  rotateRefreshTokens?: boolean
}

/** What the dev provider says of an account (besides its sub, the id) when not given accountClaims. */
export function defaultAccountClaims (id: string): Record<string, unknown> {
  return { preferred_username: id, email: `${id}@example.test`, email_verified: true, name: id }
}

export interface DevProvider {
  /** `http://127.0.0.1:${port}`, no trailing slash. */
  issuer: string
  port: number
  clientId: string
  clientSecret: string
  /** The private JWK the provider signs with (tests sign their own logout tokens with it). */
  signingKey: JWK
  /** The oidc-provider instance (its events: 'grant.success', 'backchannel.success', 'backchannel.error', …). */
  provider: Provider
  /** Closes the server and every open socket. */
  stop (): Promise<void>
  /** Listens again on the same port after stop(). */
  start (): Promise<void>
}

// oidc-provider prints these on every start (or on the first use of a default page): expected in a
// development provider, noise in test output. Its other warnings and notices still get through.
const EXPECTED_NOTICES = new RegExp(
  '^(?:\\x1b\\[[\\d;]*m)?oidc-provider (?:WARNING|NOTICE): (?:' + [
    'Unsupported runtime', // Node 20: oidc-provider 9 asks for 22, and works on 20
    'a quick start development-only feature devInteractions is enabled',
    'a quick start development-only in-memory adapter is used',
    'default \\S+ function called, you SHOULD change it' // the default logout, error and success pages
  ].join('|') + ')'
)

let consoleFiltered = false
function filterExpectedNotices (): void {
  if (consoleFiltered) return
  consoleFiltered = true
  for (const level of ['warn', 'info'] as const) {
    const original = console[level].bind(console)
    console[level] = (...args: unknown[]) => {
      if (typeof args[0] === 'string' && EXPECTED_NOTICES.test(args[0])) return
      original(...args)
    }
  }
}

/** A new private RS256 signing key as a JWK, with a kid (the provider's, unless given one; tests' stranger keys). */
export async function generateSigningKey (): Promise<JWK> {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true })
  const jwk = await exportJWK(privateKey)
  return { ...jwk, kid: randomBytes(8).toString('base64url'), alg: 'RS256', use: 'sig' }
}

async function listen (server: ReturnType<typeof createServer>, port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const onError = (error: Error) => reject(error)
    server.once('error', onError)
    server.listen(port, '127.0.0.1', () => {
      server.off('error', onError)
      resolve()
    })
  })
}

export async function startDevProvider (options: DevProviderOptions): Promise<DevProvider> {
  if (options.appUrls.length === 0) throw new Error('startDevProvider: appUrls is empty')
  const appUrls = options.appUrls.map((url) => url.replace(/\/+$/, ''))
  const clientId = options.clientId ?? 'session-backend'
  const clientSecret = options.clientSecret ?? randomBytes(32).toString('base64url')
  const signingKey = options.signingKey ?? await generateSigningKey()
  if (!signingKey.kid) throw new Error('startDevProvider: signingKey needs a kid')

  filterExpectedNotices()
  // Imported here, after the filter, because oidc-provider warns about Node 20 as it loads.
  const { default: ProviderClass } = await import('oidc-provider')

  // The issuer holds the port, so the server listens first and gets its handler once the provider exists.
  const app: { handler?: (req: IncomingMessage, res: ServerResponse) => void } = {}
  const server = createServer((req, res) => {
    if (app.handler) app.handler(req, res)
    else res.writeHead(503).end()
  })
  await listen(server, options.port ?? 0)
  const port = (server.address() as AddressInfo).port
  const issuer = `http://127.0.0.1:${port}`

  const configuration: Configuration = {
    clients: [{
      client_id: clientId,
      client_secret: clientSecret,
      redirect_uris: appUrls.map((url) => `${url}/auth/callback`),
      post_logout_redirect_uris: appUrls.map((url) => `${url}/`),
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      // client_secret_post is accepted too: oidc-provider treats the two as one family.
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'RS256',
      backchannel_logout_uri: options.backchannelLogoutUri ?? `${appUrls[0]}/auth/backchannel-logout`,
      backchannel_logout_session_required: true
    }],
    jwks: { keys: [signingKey as ProviderJWK] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    claims: {
      openid: ['sub'],
      profile: ['preferred_username', 'name'],
      email: ['email', 'email_verified']
    },
    // The scope's claims in the ID token too (like Keycloak), not only at the userinfo endpoint.
    conformIdTokenClaims: false,
    features: {
      devInteractions: { enabled: true },
      backchannelLogout: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      revocation: { enabled: true }
    },
    findAccount: (_ctx, id) => ({
      accountId: id,
      claims: () => ({ ...(options.accountClaims ?? defaultAccountClaims)(id), sub: id })
    }),
    // No consent page: this provider's only client gets whatever it asks for.
    loadExistingGrant: async (ctx: KoaContextWithOIDC) => {
      const { client, session, provider } = ctx.oidc
      if (!client || !session) return undefined
      const grantId = ctx.oidc.result?.consent?.grantId ?? session.grantIdFor(client.clientId)
      const grant = (grantId ? await provider.Grant.find(grantId) : undefined) ??
        new provider.Grant({ clientId: client.clientId, accountId: session.accountId })
      grant.addOIDCScope([...ctx.oidc.requestParamOIDCScopes].join(' '))
      if (ctx.oidc.requestParamClaims.size > 0) grant.addOIDCClaims([...ctx.oidc.requestParamClaims])
      await grant.save()
      return grant
    },
    // A refresh token without offline_access, which the app does not ask for.
    issueRefreshToken: (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    ...(options.rotateRefreshTokens ? { rotateRefreshToken: true } : {}),
    // Back-channel logout tokens go to 127.0.0.1, which oidc-provider's SSRF guard (a dispatcher it
    // adds to every outgoing request) refuses: send them with the default dispatcher.
    fetch: async (url, init) => {
      const { dispatcher: _dispatcher, ...rest } = (init ?? {}) as RequestInit & { dispatcher?: unknown }
      return await fetch(url, rest)
    },
    ttl: {
      AccessToken: options.accessTokenTtlSeconds ?? 300,
      AuthorizationCode: 60,
      IdToken: 3600,
      RefreshToken: 14 * 24 * 3600,
      Interaction: 3600,
      Session: 14 * 24 * 3600,
      Grant: 14 * 24 * 3600
    }
  }

  const provider = new ProviderClass(issuer, configuration)
  // oidc-provider turns a crash into a 500 page and an event only: say it on stderr.
  provider.on('server_error', (_ctx, error) => console.error('dev OpenID provider: server_error', error))
  app.handler = provider.callback()

  return {
    issuer,
    port,
    clientId,
    clientSecret,
    signingKey,
    provider,
    async stop () {
      if (!server.listening) return
      const closed = new Promise<void>((resolve, reject) => server.close((error) => error ? reject(error) : resolve()))
      server.closeAllConnections()
      await closed
    },
    async start () {
      if (server.listening) return
      await listen(server, port)
    }
  }
}
