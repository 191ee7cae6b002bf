import { promisify } from 'node:util'
import type { IncomingMessage } from 'node:http'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { LoginThrottle } from '../auth/login-throttle.js'
import { cookieSecure, type Config } from '../config/config.js'
import { HttpError } from '../http-error.js'
import auth, { type AuthPluginOptions } from '../plugins/auth.js'
import { metricsOf, type LoginOutcome } from '../plugins/metrics.js'
import type { RequestSession, SessionUser } from '../session/session-data.js'
import { errorBody, sessionRouteErrors, userBody } from './schemas.js'
import { writableSession } from './session.js'

// Attempts that failed or are still being checked, per window.
const ATTEMPT_WINDOW_MS = 15 * 60 * 1000
const ATTEMPTS_PER_USERNAME = 5
const ATTEMPTS_PER_ADDRESS = 20
const USER_AGENT_MAX = 256

// Counted from the answer actually sent: a login whose session could not be saved is a 503, not a success.
const LOGIN_OUTCOMES: Partial<Record<number, LoginOutcome>> = { 200: 'success', 401: 'invalid', 429: 'throttled', 503: 'unavailable' }

interface Credentials {
  username: string
  password: string
}

/**
 * Login and logout: the session id changes at login, and logout deletes the row for good. Checks
 * passwords with the app's `authenticator` (the auth plugin), registered here when the app has none.
 */
export default async function loginRoutes (fastify: FastifyInstance, options: AuthPluginOptions = {}) {
  if (!fastify.hasDecorator('authenticator')) await fastify.register(auth, options)
  const config = fastify.sessionConfig
  const metrics = metricsOf(fastify)
  const byUsername = new LoginThrottle(ATTEMPTS_PER_USERNAME, ATTEMPT_WINDOW_MS)
  const byAddress = new LoginThrottle(ATTEMPTS_PER_ADDRESS, ATTEMPT_WINDOW_MS)

  fastify.post<{ Body: Credentials }>('/session/login', {
    onResponse: async (_request, reply) => {
      const outcome = LOGIN_OUTCOMES[reply.statusCode]
      if (outcome) metrics?.loginAttempted(outcome)
    },
    schema: {
      summary: 'Log in: a new session id carries the user',
      tags: ['login'],
      body: {
        type: 'object',
        properties: {
          username: { type: 'string', minLength: 1, maxLength: 64 },
          // Only bounds the body: bcrypt's 72 bytes are the htpasswd authenticator's to refuse,
          // with the 401 of any wrong password (a 400 here would tell them apart, and counts characters).
          password: { type: 'string', minLength: 1, maxLength: 1024 }
        },
        required: ['username', 'password'],
        additionalProperties: false
      },
      response: {
        200: {
          type: 'object',
          properties: { authenticated: { type: 'boolean', const: true }, user: userBody },
          required: ['authenticated', 'user']
        },
        400: errorBody,
        401: errorBody,
        429: errorBody,
        ...sessionRouteErrors
      }
    }
  }, async (request) => {
    writableSession(request.raw.session)
    const authenticator = fastify.authenticator
    if (!authenticator) {
      throw new HttpError(503, 'Login is not configured: set AUTH_USERS_FILE to an htpasswd file of bcrypt hashes (npm run users -- add NAME)')
    }
    const { username, password } = request.body
    const keys = { user: username.toLowerCase(), address: request.ip }
    const wait = Math.max(byUsername.retryAfterSeconds(keys.user), byAddress.retryAfterSeconds(keys.address))
    if (wait > 0) {
      throw new HttpError(429, 'Too many failed logins; try again later', { headers: { 'retry-after': String(wait) } })
    }
    // Counted now, in the same synchronous step as the check above: attempts arriving while this
    // one awaits bcrypt see it. A failure keeps both slots until the window ends.
    const userSlot = byUsername.reserve(keys.user)
    const addressSlot = byAddress.reserve(keys.address)

    let user: SessionUser | null
    try {
      user = await authenticator.verify(username, password)
    } catch (error) {
      // The check itself failed (a consumer's LDAP is down): not a wrong password, so not counted.
      userSlot.release()
      addressSlot.release()
      throw error
    }
    if (!user) {
      request.log.info({ outcome: 'failure' }, 'login failed')
      throw new HttpError(401, 'Unknown user or wrong password', { error: 'invalid credentials' })
    }
    byUsername.reset(keys.user)
    // Only failures count against an address, as before: many users may share one (a NAT).
    addressSlot.release()

    await startLoggedInSession(request, user)
    request.log.info({ outcome: 'success', user: user.name }, 'login')
    return { authenticated: true, user }
  })

  fastify.post('/session/logout', {
    schema: {
      summary: 'Log out: the session row is deleted and the cookie cleared',
      tags: ['login'],
      response: { 204: { type: 'null', description: 'Logged out' }, 503: errorBody }
    }
  }, async (request, reply) => {
    if (await endCurrentSession(request, reply, config)) metrics?.sessionsRevoked('logout', 1)
    return reply.code(204).send()
  })
}

/**
 * Puts the user in a session of a new id: an id planted before login (fixation) is worthless. Only
 * the client's own state moves over (it is the client's to set anyway); what else the pre-login
 * session held (a pending SSO login) stays behind with the old id. Resolves with the new session.
 */
export async function startLoggedInSession (request: FastifyRequest, user: SessionUser): Promise<RequestSession> {
  const anonymous = writableSession(request.raw.session)
  const state = anonymous.state
  await promisify(anonymous.regenerate.bind(anonymous))()
  const session = request.raw.session as RequestSession
  if (state !== undefined) session.state = state
  session.user = user
  session.createdAt = Date.now()
  session.userAgent = String(request.headers['user-agent'] ?? '').slice(0, USER_AGENT_MAX)
  session.ip = request.ip
  return session
}

/**
 * Deletes the request's own session row (express-session then neither saves it nor sets a
 * cookie) and tells the browser to drop the cookie. Resolves with whether there was a session.
 */
export async function endCurrentSession (request: { raw: IncomingMessage, protocol: string }, reply: FastifyReply, config: Config): Promise<boolean> {
  const session = request.raw.session
  if (session) await promisify(session.destroy.bind(session))()
  const secure = cookieSecure(config) === true || (cookieSecure(config) === 'auto' && request.protocol === 'https')
  // As for the session cookie itself: browsers drop SameSite=None without Secure (middleware-store.ts).
  const configured = config.SESSION_COOKIE_SAMESITE === 'none' && !secure ? 'lax' : config.SESSION_COOKIE_SAMESITE
  const sameSite = configured.charAt(0).toUpperCase() + configured.slice(1)
  reply.header('set-cookie', `${config.SESSION_COOKIE_NAME}=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; HttpOnly; SameSite=${sameSite}${secure ? '; Secure' : ''}`)
  return session !== undefined
}
