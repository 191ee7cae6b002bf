import type { FastifyInstance, FastifyReply } from 'fastify'
import { InvalidLogoutTokenError, LOGOUT_TOKEN_MAX_AGE_S, type LogoutRequest } from '../auth/sso/logout-token.js'
import { CLOCK_TOLERANCE_S, providerUnavailable } from '../auth/sso/oidc-client.js'
import { HttpError } from '../http-error.js'
import { metricsOf, type LoginOutcome } from '../plugins/metrics.js'
import type { SingleSignOn } from '../plugins/sso.js'
import { destroySession, type ManagedStore } from '../session/managed-store.js'
import { errorBody } from './schemas.js'
import { endCurrentSession, startLoggedInSession } from './login.js'
import { writableSession } from './session.js'

/** A login started at /auth/login and not completed within this is refused at the callback. */
export const LOGIN_WINDOW_MS = 10 * 60 * 1000
const RETURN_TO_MAX = 2048
// A replayed logout token is refused for as long as it could still pass the freshness check.
const LOGOUT_TOKEN_MEMORY_MS = (LOGOUT_TOKEN_MAX_AGE_S + 2 * CLOCK_TOLERANCE_S) * 1000
const CALLBACK_OUTCOMES: Partial<Record<number, LoginOutcome>> = { 302: 'success', 400: 'invalid', 503: 'unavailable' }

/**
 * `returnTo` as a path of this site (dot segments resolved), or undefined when it would lead
 * elsewhere: an absolute URL, a scheme-relative `//host`, a backslash (which browsers read as a
 * slash), a control character, or a path that becomes `//host` once its dot segments go (`/.//evil`,
 * `/%2e%2e//evil`). The callback redirects to it on PUBLIC_URL (returnToUrl), never to the path alone.
 */
export function sameSitePath (returnTo: string, publicUrl: string): string | undefined {
  const controlOrBackslash = [...returnTo].some((char) => char === '\\' || char.charCodeAt(0) < 0x20 || char.charCodeAt(0) === 0x7f)
  if (!returnTo.startsWith('/') || returnTo.startsWith('//') || controlOrBackslash) return undefined
  const url = new URL(returnTo, publicUrl)
  if (url.origin !== new URL(publicUrl).origin || url.pathname.startsWith('//')) return undefined
  return `${url.pathname}${url.search}${url.hash}`
}

/**
 * Where the callback sends the browser: the pending login's path on PUBLIC_URL, checked again (a
 * login started before an upgrade may hold a returnTo that older rules let through).
 */
function returnToUrl (returnTo: string, publicUrl: string): string {
  return `${publicUrl}${sameSitePath(returnTo, publicUrl) ?? '/'}`
}

/** Both SSO scopes take HTML forms' bodies (the page's logout form, the provider's logout token). */
function acceptFormBodies (fastify: FastifyInstance): void {
  fastify.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 16 * 1024 },
    (_request, body, done) => done(null, Object.fromEntries(new URLSearchParams(body as string))))
}

function ssoOf (fastify: FastifyInstance): SingleSignOn {
  if (!fastify.sso) throw new Error('ssoRoutes needs the sso plugin registered first (src/plugins/sso.ts) with OIDC_ISSUER set')
  return fastify.sso
}

function noStore (reply: FastifyReply): void {
  reply.header('cache-control', 'no-store')
}

/**
 * The browser's SSO routes, behind the session bridge: login at the provider (the pending login in
 * the pre-login session), the callback (a new session id for the user), logout here and there.
 * Registered only when OIDC_ISSUER is set; without it these paths are 404s.
 */
export default async function ssoRoutes (fastify: FastifyInstance) {
  const { client } = ssoOf(fastify)
  const config = fastify.sessionConfig
  const publicUrl = config.PUBLIC_URL as string
  const metrics = metricsOf(fastify)
  acceptFormBodies(fastify)

  fastify.get<{ Querystring: { returnTo?: string } }>('/auth/login', {
    schema: {
      summary: 'Log in with single sign-on: 302 to the identity provider',
      description: 'Keeps the PKCE verifier, state and nonce in the pre-login session. `returnTo` must be a path of this site.',
      tags: ['sso'],
      querystring: { type: 'object', properties: { returnTo: { type: 'string', maxLength: RETURN_TO_MAX } } },
      response: { 302: { type: 'null', description: 'To the provider' }, 400: errorBody, 403: errorBody, 503: errorBody }
    }
  }, async (request, reply) => {
    const returnTo = sameSitePath(request.query.returnTo || '/', publicUrl)
    if (returnTo === undefined) throw new HttpError(400, 'returnTo must be a path on this site, such as /account')
    const session = writableSession(request.raw.session)
    const { url, pending } = await client.beginLogin(returnTo)
    session.ssoLogin = pending
    noStore(reply)
    return reply.redirect(url.href, 302)
  })

  fastify.get('/auth/callback', {
    onResponse: async (_request, reply) => {
      const outcome = CALLBACK_OUTCOMES[reply.statusCode]
      if (outcome) metrics?.loginAttempted(outcome)
    },
    schema: {
      summary: 'The provider\'s redirect back: the code exchanged, the user in a new session',
      description: 'Checks state, PKCE and the ID token (issuer, audience, signature, nonce, expiry). Tokens stay on the server.',
      tags: ['sso'],
      querystring: { type: 'object', properties: { code: { type: 'string' }, state: { type: 'string' }, error: { type: 'string' } } },
      response: { 302: { type: 'null', description: 'To returnTo' }, 400: errorBody, 403: errorBody, 503: errorBody }
    }
  }, async (request, reply) => {
    const pre = writableSession(request.raw.session)
    const pending = pre.ssoLogin
    // One use: this login's state and verifier are spent by any answer but a 5xx (the bridge saves
    // no session then, so a callback the provider could not complete may be tried again).
    delete pre.ssoLogin
    noStore(reply)
    if (!pending) {
      throw new HttpError(400, 'Single sign-on failed: no login is in progress in this browser (it was completed or never started here); start again at /auth/login')
    }
    if (Date.now() - pending.startedAt > LOGIN_WINDOW_MS) throw new HttpError(400, 'Single sign-on failed: the login took too long; start again at /auth/login')
    const query = request.url.indexOf('?')
    const login = await client.completeLogin(query === -1 ? '' : request.url.slice(query), pending).catch((error: unknown) => {
      if (error instanceof HttpError && error.statusCode === 400) request.log.info({ outcome: 'failure', reason: error.message }, 'sso login failed')
      throw error
    })
    const session = await startLoggedInSession(request, login.user)
    session.sso = login.tokens
    request.log.info({ outcome: 'success', user: login.user.name, method: 'sso' }, 'login')
    return reply.redirect(returnToUrl(pending.returnTo, publicUrl), 302)
  })

  fastify.post('/auth/logout', {
    schema: {
      summary: 'Log out here and at the identity provider: 303 to its end-session URL',
      description: 'Ends the local session as POST /session/logout does. For a session without an SSO login, or while the provider\'s metadata is unknown, 303 to the page.',
      tags: ['sso'],
      response: { 303: { type: 'null', description: 'To the provider\'s end-session URL (id_token_hint, post_logout_redirect_uri)' }, 503: errorBody }
    }
  }, async (request, reply) => {
    const idToken = request.raw.session?.sso?.idToken
    if (await endCurrentSession(request, reply, config)) metrics?.sessionsRevoked('logout', 1)
    noStore(reply)
    let target = client.postLogoutRedirectUri
    if (idToken) {
      try {
        target = (await client.endSessionUrl(idToken))?.href ?? target
      } catch (error) {
        request.log.warn({ reason: (error as Error).message }, 'logged out here only: the identity provider is unreachable')
      }
    }
    return reply.redirect(target, 303)
  })
}

/**
 * Ends the sessions a logout token names: those of its provider session (`sid`) if it names one,
 * else every session of its subject. With a subject, the user index finds them, and a session
 * whose login recorded no sid, which cannot be told apart, ends with any sid of its subject; a
 * token with `sid` alone finds its sessions by their provider-login key. Resolves with how many ended.
 */
async function endSessionsOfLogin (store: ManagedStore, logout: LogoutRequest): Promise<number> {
  if (logout.sub === undefined) return await store.endSessionsOfProviderLogin(logout.iss, logout.sid as string)
  const user = { name: logout.sub, iss: logout.iss, sub: logout.sub }
  if (!logout.sid) return await store.endSessionsOf(user)
  const targets = (await store.sessionsOf(user)).filter(({ data }) => data.sso?.sid === undefined || data.sso.sid === logout.sid)
  for (const { id } of targets) await destroySession(store, id)
  return targets.length
}

/**
 * OpenID Connect Back-Channel Logout 1.0: the provider tells this app that a login ended there.
 * Every session of that provider session (`sid`) or subject (`sub`) ends, on every instance at
 * once (they are rows found through the user index, or the provider-login index for `sid` alone).
 * Outside the session scope: no cookie, no session.
 */
export async function backchannelLogoutRoutes (fastify: FastifyInstance) {
  const { client, logoutTokens } = ssoOf(fastify)
  const store = fastify.sessionStore
  const metrics = metricsOf(fastify)
  acceptFormBodies(fastify)

  fastify.post<{ Body: { logout_token?: string } }>('/auth/backchannel-logout', {
    schema: {
      summary: 'Back-channel logout: the identity provider ends sessions of a login it ended',
      tags: ['sso'],
      consumes: ['application/x-www-form-urlencoded'],
      body: { type: 'object', properties: { logout_token: { type: 'string', maxLength: 16 * 1024 } } },
      response: {
        200: { type: 'null', description: 'The sessions ended' },
        400: {
          type: 'object',
          properties: { error: { type: 'string', const: 'invalid_request' }, error_description: { type: 'string' } },
          required: ['error']
        },
        503: errorBody
      }
    },
    // Fastify's own 400 for a body of the wrong shape answers in this route's format too.
    attachValidation: true
  }, async (request, reply) => {
    noStore(reply)
    const refuse = (reason: string) => {
      request.log.info({ reason }, 'back-channel logout refused')
      return reply.code(400).send({ error: 'invalid_request', error_description: reason })
    }
    const token = request.validationError ? undefined : request.body?.logout_token
    if (!token) return refuse('send the logout token as the logout_token form field')
    let logout
    try {
      logout = await logoutTokens.verify(token, await client.ready())
    } catch (error) {
      if (error instanceof InvalidLogoutTokenError) return refuse(error.message)
      if (error instanceof HttpError) throw error
      request.log.warn({ reason: (error as Error).message }, 'back-channel logout: the provider\'s keys could not be fetched')
      throw providerUnavailable()
    }
    const claim = `backchannel-logout ${logout.iss} ${logout.jti}`
    if (!await store.claimOnce(claim, LOGOUT_TOKEN_MEMORY_MS)) return refuse('logout token already used')
    let ended: number
    try {
      ended = await endSessionsOfLogin(store, logout)
    } catch (error) {
      // Not done: the provider's retry of this token must not be taken for a replay.
      await store.releaseOnce(claim).catch(() => {})
      throw error
    }
    metrics?.sessionsRevoked('backchannel_logout', ended)
    request.log.info({ ended, bySid: logout.sid !== undefined }, 'back-channel logout')
    return reply.code(200).send()
  })
}
