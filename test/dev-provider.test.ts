import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose'
import * as oidc from 'openid-client'
import t, { type Test } from 'tap'
import { startDevProvider } from '../scripts/sso/dev-provider.js'
import { driveProviderLogin, logoutAtProvider } from './support/sso-login.js'

// The SSO fixture on its own, without the app: discovery, a code flow with PKCE by openid-client,
// refresh, RP-initiated logout with its back-channel logout token, stop() and start().

const APP_URL = 'http://127.0.0.1:1'
const REDIRECT_URI = `${APP_URL}/auth/callback`

/** A stand-in for the app's back-channel logout endpoint: the logout_token of each POST. */
async function logoutTokenReceiver (t: Test): Promise<{ url: string, tokens: string[] }> {
  const tokens: string[] = []
  const server = createServer((req, res) => {
    let body = ''
    req.setEncoding('utf8').on('data', (chunk: string) => { body += chunk }).on('end', () => {
      tokens.push(new URLSearchParams(body).get('logout_token') ?? '')
      res.writeHead(200).end()
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.closeAllConnections(); server.close() })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/auth/backchannel-logout`, tokens }
}

async function codeFlow (config: oidc.Configuration, username: string) {
  const verifier = oidc.randomPKCECodeVerifier()
  const state = oidc.randomState()
  const nonce = oidc.randomNonce()
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT_URI,
    scope: 'openid profile email',
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce
  })
  const login = await driveProviderLogin(url.href, username, 'whatever')
  const tokens = await oidc.authorizationCodeGrant(config, new URL(login.callbackUrl), {
    pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce
  })
  return { login, tokens }
}

t.test('discovery, code flow with PKCE, refresh, logout, restart', async (t) => {
  const receiver = await logoutTokenReceiver(t)
  const dev = await startDevProvider({ appUrls: [APP_URL], backchannelLogoutUri: receiver.url })
  t.teardown(() => dev.stop())
  t.equal(dev.issuer, `http://127.0.0.1:${dev.port}`)
  t.equal(dev.clientId, 'session-backend')
  t.ok(dev.clientSecret.length >= 40, 'a random secret')
  t.equal(dev.signingKey.kty, 'RSA')
  t.ok(dev.signingKey.d && dev.signingKey.kid, 'the private key, with a kid')

  const discovery = await (await fetch(`${dev.issuer}/.well-known/openid-configuration`)).json() as Record<string, unknown>
  t.equal(discovery.issuer, dev.issuer)
  t.equal(discovery.end_session_endpoint, `${dev.issuer}/session/end`)
  t.equal(discovery.backchannel_logout_supported, true)
  t.equal(discovery.backchannel_logout_session_supported, true)
  const jwks = await (await fetch(String(discovery.jwks_uri))).json() as JSONWebKeySet
  t.same(jwks.keys.map((key) => key.kid), [dev.signingKey.kid], 'the JWKS publishes the signing key')
  t.notOk(jwks.keys[0]?.d, 'and only its public half')

  const config = await oidc.discovery(new URL(dev.issuer), dev.clientId, dev.clientSecret, undefined, {
    execute: [oidc.allowInsecureRequests]
  })
  const granted: string[] = []
  dev.provider.on('grant.success', () => granted.push('grant'))
  const { login, tokens } = await codeFlow(config, 'alice')
  t.match(login.callbackUrl, /^http:\/\/127\.0\.0\.1:1\/auth\/callback\?code=/)
  t.match(login.providerCookies, /_session=/, 'the provider session cookie')
  const claims = tokens.claims()
  t.match(claims, {
    iss: dev.issuer,
    aud: dev.clientId,
    sub: 'alice',
    preferred_username: 'alice',
    name: 'alice',
    email: 'alice@example.test',
    email_verified: true
  }, 'the profile and email claims in the ID token')
  t.type(claims?.sid, 'string', 'a sid, which logout tokens repeat')
  t.ok(tokens.refresh_token, 'a refresh token without offline_access')
  t.equal(tokens.expires_in, 300)
  t.same(granted, ['grant'])

  const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token!)
  t.ok(refreshed.access_token)
  t.equal(refreshed.claims()?.sub, 'alice', 'a new ID token too')

  const endSession = oidc.buildEndSessionUrl(config, {
    id_token_hint: tokens.id_token!,
    post_logout_redirect_uri: `${APP_URL}/`
  })
  const backchannel = once(dev.provider, 'backchannel.success')
  t.equal(await logoutAtProvider(endSession.href, login.providerCookies), `${APP_URL}/`, 'back to the app')
  await backchannel
  t.equal(receiver.tokens.length, 1, 'one logout token')
  const { payload, protectedHeader } = await jwtVerify(receiver.tokens[0]!, createLocalJWKSet(jwks), {
    issuer: dev.issuer, audience: dev.clientId, typ: 'logout+jwt'
  })
  t.equal(protectedHeader.alg, 'RS256')
  t.match(payload, { sub: 'alice', sid: claims?.sid, events: { 'http://schemas.openid.net/event/backchannel-logout': {} } })
  t.notOk('nonce' in payload, 'no nonce in a logout token')
  await t.rejects(oidc.refreshTokenGrant(config, tokens.refresh_token!), { name: 'ResponseBodyError', error: 'invalid_grant' }, 'logout revoked the refresh token')

  await dev.stop()
  await t.rejects(fetch(`${dev.issuer}/.well-known/openid-configuration`), 'down after stop()')
  await dev.start()
  const again = await fetch(`${dev.issuer}/.well-known/openid-configuration`)
  t.equal(again.status, 200, 'up again after start(), same port')
  const second = await codeFlow(config, 'bob')
  t.equal(second.tokens.claims()?.preferred_username, 'bob', 'and logs in')
})

t.test('a given client, secret and key; a port of its own', async (t) => {
  const first = await startDevProvider({ appUrls: [APP_URL] })
  t.teardown(() => first.stop())
  const dev = await startDevProvider({
    appUrls: ['http://127.0.0.1:2', APP_URL],
    clientId: 'other',
    clientSecret: 'other-secret',
    signingKey: first.signingKey,
    accessTokenTtlSeconds: 42
  })
  t.teardown(() => dev.stop())
  t.not(dev.port, first.port)
  t.equal(dev.signingKey, first.signingKey)
  const config = await oidc.discovery(new URL(dev.issuer), 'other', 'other-secret', undefined, {
    execute: [oidc.allowInsecureRequests]
  })
  const { tokens } = await codeFlow(config, 'carol')
  t.equal(tokens.expires_in, 42)
  t.equal(tokens.claims()?.aud, 'other')
})
