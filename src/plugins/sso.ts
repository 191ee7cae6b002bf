import type { FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { AccessTokens } from '../auth/sso/access-tokens.js'
import { LogoutTokenVerifier } from '../auth/sso/logout-token.js'
import { OidcClient } from '../auth/sso/oidc-client.js'
import { backchannelLogoutRoutes } from '../routes/sso.js'

/** Single sign-on, as `fastify.sso` (present when OIDC_ISSUER is set). */
export interface SingleSignOn {
  client: OidcClient
  logoutTokens: LogoutTokenVerifier
  /**
   * A valid access token of the request's SSO user, for your routes to call APIs with: refreshed
   * when it is near expiry (once, however many requests ask at once). Rejects with a 401 HttpError
   * when the session has no SSO login, or when the provider refused the refresh (the session then
   * ends); with a 503 while the provider is unreachable.
   */
  accessToken (request: FastifyRequest): Promise<string>
}

declare module 'fastify' {
  interface FastifyInstance {
    sso?: SingleSignOn
  }
}

/**
 * The relying party of OIDC_ISSUER, shared by every scope: discovery starts now and is retried in
 * the background (a provider that is down does not stop the server; the SSO routes answer 503
 * until it answers). Registers the back-channel logout route here, outside the session scope: the
 * provider's server-to-server call carries no cookie and must not get a session. The browser's
 * routes are `ssoRoutes`, in the session scope. Without OIDC_ISSUER it does nothing.
 */
export default fp(async function ssoPlugin (fastify) {
  const config = fastify.sessionConfig
  if (!config.OIDC_ISSUER) return
  const client = new OidcClient({
    issuer: config.OIDC_ISSUER,
    clientId: config.OIDC_CLIENT_ID as string,
    clientSecret: config.OIDC_CLIENT_SECRET as string,
    publicUrl: config.PUBLIC_URL as string,
    scopes: config.OIDC_SCOPES
  }, fastify.log)
  const accessTokens = new AccessTokens(client, fastify.sessionStore)
  fastify.decorate('sso', {
    client,
    logoutTokens: new LogoutTokenVerifier(client.settings.clientId),
    accessToken: (request: FastifyRequest) => accessTokens.of(request)
  })
  fastify.addHook('onReady', async () => client.start())
  fastify.addHook('onClose', async () => client.close())
  await fastify.register(backchannelLogoutRoutes)
}, { name: 'sso', dependencies: ['session-config', 'session-store'] })
