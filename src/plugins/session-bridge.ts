import { createHmac } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import fastifyExpress from '@fastify/express'
import session, { type SessionData } from 'express-session'
import type { FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import onHeaders from 'on-headers'
import { cookieSecure, lifetimePolicy, sessionSecrets } from '../config/config.js'
import { HttpError } from '../http-error.js'
import { touchIsDue } from '../session/lifetime.js'
import { SessionEndedError, SessionRejectedError } from '../session/managed-store.js'
import { applyCookiePolicy, hasOutdatedCookie, isHttps, limitCookieLifetime, middlewareStore, type CookiePolicy } from '../session/middleware-store.js'
import { persistedExpiry, sessionContent } from '../session/persisted.js'
import type { RequestSession } from '../session/session-data.js'

/** The session as it was when the route started: tells whether the route changed it. */
interface Snapshot {
  id: string
  hash: string
}

/**
 * Mounts express-session through @fastify/express for the routes registered in the same scope
 * (health, docs and metrics live outside it and never pay for it). Added on top:
 * - with a Secure cookie, a plain-HTTP request gets no session at all: express-session would
 *   otherwise create and store one whose cookie it then refuses to send (a row per request);
 * - a session that must be written is written before the response starts, so a store failure
 *   becomes a 503 without Set-Cookie instead of a 200 with a cookie for a session that was lost;
 * - an unchanged session is touched lazily, without the answer waiting, and its cookie is renewed
 *   only when its stored expiry is (docs/benchmarks.md has what each saves);
 * - every answer of the scope, errors included, is `Cache-Control: no-store`.
 */
export default fp(async function sessionBridge (fastify) {
  const config = fastify.sessionConfig
  const secure = cookieSecure(config)
  const store = fastify.sessionStore
  const cookiePolicy: CookiePolicy = { secure, sameSite: config.SESSION_COOKIE_SAMESITE, maxAgeMs: config.SESSION_MAX_AGE }
  const sessionStore = middlewareStore(store, cookiePolicy, fastify.log.child({ component: 'session-bridge' }))
  const middleware = session({
    name: config.SESSION_COOKIE_NAME,
    secret: sessionSecrets(config),
    store: sessionStore,
    resave: config.SESSION_RESAVE,
    saveUninitialized: config.SESSION_SAVE_UNINITIALIZED,
    // The cookie follows the idle timeout, renewed when the stored expiry is (see onSend), not on
    // every answer: a Set-Cookie and an HMAC per request for a renewal nobody needs yet.
    rolling: false,
    cookie: {
      path: '/',
      httpOnly: true,
      secure,
      sameSite: config.SESSION_COOKIE_SAMESITE,
      maxAge: config.SESSION_MAX_AGE
    }
  })
  const snapshots = new WeakMap<IncomingMessage, Snapshot>()

  // express-session gives the store a `generate(req)` and hashes the new session right after
  // calling it; stamping the creation time inside it keeps an untouched new session "unmodified"
  // (so saveUninitialized=false still stores nothing for a visit that changes nothing).
  const generating = sessionStore as typeof sessionStore & { generate: (req: IncomingMessage) => void }
  const generate = generating.generate.bind(generating)
  generating.generate = (req) => {
    generate(req)
    if (!req.session) return
    req.session.createdAt = Date.now()
    applyCookiePolicy(req.session.cookie, cookiePolicy, isHttps(req))
  }

  const addMaxAge = maxAgeAdder(config.SESSION_COOKIE_NAME)

  // An app that mounts Express middleware of its own has registered @fastify/express already (a
  // second registration would clash on its `use` decorator); express-session joins that one.
  if (!fastify.hasDecorator('express')) {
    if (fastify.hasDecorator('use')) throw new Error('the session plugin mounts express-session through @fastify/express, and this scope has another `use` (@fastify/middie?): register @fastify/express instead, or the session plugin in a scope of its own')
    await fastify.register(fastifyExpress)
  }
  fastify.use((req: IncomingMessage & { protocol?: string }, res: ServerResponse, next: (error?: unknown) => void) => {
    if (secure === true && req.protocol !== 'https') return next()
    // Listeners run newest first: registered before express-session's, this one runs after it.
    onHeaders(res, addMaxAge)
    middleware(req as never, res as never, (error?: unknown) => {
      const current = req.session
      if (!error && current) snapshots.set(req, { id: current.id, hash: sessionContent(current) })
      next(error)
    })
  })

  const lifetime = lifetimePolicy(config)
  const signingSecret = sessionSecrets(config)[0] as string

  // One hook in callback style: an answer that writes nothing goes on without a promise and a
  // microtask per hook (they showed in the profile of a read, docs/benchmarks.md).
  fastify.addHook('onSend', (request, reply, _payload, done) => {
    // At onSend, not onRequest: answers refused before this plugin's hooks ran (the cross-site
    // guard's 403, a store failure while express-session loads the session) must not be cached either.
    reply.header('cache-control', 'no-store')
    let saving: Promise<void> | undefined
    try {
      saving = finishSession(request, reply)
    } catch (error) {
      done(error as Error)
      return
    }
    if (!saving) {
      done()
      return
    }
    // done() goes on to send the answer; an error it throws there is the answer's, as in
    // Fastify's own runner for async hooks, never an unhandled rejection.
    saving.then(() => {
      try {
        done()
      } catch (error) {
        done(error as Error)
      }
    }, done)
  })

  /**
   * Decides what the session needs now the answer is ready; a promise only when it must be written
   * before the answer goes out.
   */
  function finishSession (request: FastifyRequest, reply: FastifyReply): Promise<void> | undefined {
    // A failed answer names no session and writes none, whichever error handler the app has:
    // express-session sets no cookie and saves nothing for a request without one.
    if (reply.statusCode >= 500) {
      delete request.raw.session
      // An onSend hook after this one failed (the error handler's answer comes through here
      // again): a cookie this hook already set must not go out with it.
      dropSessionCookie(reply)
      return undefined
    }
    const current = request.raw.session
    const snapshot = snapshots.get(request.raw)
    if (!current || !snapshot) return undefined
    const modified = current.id !== snapshot.id || sessionContent(current) !== snapshot.hash
    const neverStored = persistedExpiry(current, current.id) === undefined
    // A route that assigned a JSON copy of a session (`Object.assign(req.session, JSON.parse(...))`)
    // replaced its Cookie with a plain object, which express-session would serialize with no
    // attributes at all: rebuild it, attributes from the configuration.
    if (!(current.cookie instanceof session.Cookie)) current.cookie = rebuiltCookie(current.cookie, cookiePolicy, isHttps(request.raw))
    // The idle timeout restarts now (express-session would do it while ending the response), for
    // no longer than SESSION_MAX_AGE whatever the route set.
    limitCookieLifetime(current.cookie, cookiePolicy)
    const cookieLifetime = current.cookie.originalMaxAge
    current.touch()
    // express-session re-derives originalMaxAge as `expires - Date.now()` just after setting
    // expires: a millisecond short when one ticked between, which the row would keep and the next
    // touch shorten again.
    current.cookie.originalMaxAge = cookieLifetime
    if (modified || neverStored) {
      if (modified || config.SESSION_SAVE_UNINITIALIZED) return save(request.raw)
    } else if (config.SESSION_RESAVE) {
      return save(request.raw).then(() => renewCookie(reply, current, request.protocol))
    } else if (hasOutdatedCookie(current)) {
      // An outdated cookie (its stored attributes are not the configured ones) is sent again now,
      // and the row rewritten with the configured ones, so this happens once; never over another
      // request's write, and without the answer waiting.
      store.rewriteUnchanged(current.id, current as SessionData).catch(() => {})
      renewCookie(reply, current, request.protocol)
    } else {
      // The store rewrites the expiry without making the answer wait (a failure is logged), and the
      // cookie is renewed with it, so the browser and the store forget the session together. A
      // cookie signed with a previous secret is re-signed at once, so rotation completes quickly.
      const due = touchIsDue(current.id, current as SessionData, lifetime)
      if (due) store.touch(current.id, current as SessionData, () => {})
      if (due || signedWithPreviousSecret(request.raw, current.id)) renewCookie(reply, current, request.protocol)
    }
    return undefined
  }

  const cookiePattern = new RegExp(`(?:^|;)\\s*${config.SESSION_COOKIE_NAME.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}=([^;]*)`)
  const rotating = sessionSecrets(config).length > 1

  /** Only while SESSION_PREVIOUS_SECRETS lists a secret: otherwise every valid cookie is current. */
  function signedWithPreviousSecret (req: IncomingMessage, id: string): boolean {
    if (!rotating) return false
    const value = cookiePattern.exec(req.headers.cookie ?? '')?.[1]
    if (value === undefined) return false
    try {
      return decodeURIComponent(value.trim()) !== `s:${id}.${signature(id)}`
    } catch {
      return false
    }
  }

  function signature (id: string): string {
    return createHmac('sha256', signingSecret).update(id).digest('base64').replace(/=+$/, '')
  }

  function dropSessionCookie (reply: FastifyReply): void {
    const header = reply.getHeader('set-cookie')
    if (header === undefined) return
    const cookies = [header].flat().map(String)
    const kept = cookies.filter((cookie) => !cookie.startsWith(`${config.SESSION_COOKIE_NAME}=`))
    if (kept.length === cookies.length) return
    reply.removeHeader('set-cookie')
    if (kept.length > 0) reply.header('set-cookie', kept)
  }

  /** What express-session sends for a new or changed session, for an unchanged one being extended. */
  function renewCookie (reply: FastifyReply, current: RequestSession, protocol: string): void {
    if (current.cookie.secure && protocol !== 'https') return
    const cookie = (current.cookie as typeof current.cookie & { serialize: (name: string, value: string) => string })
      .serialize(config.SESSION_COOKIE_NAME, `s:${current.id}.${signature(current.id)}`)
    // On the reply, which appends Set-Cookie values: a raw header would be replaced by any
    // Set-Cookie a route put on the reply.
    reply.header('set-cookie', cookie)
  }
}, { name: 'session-bridge', dependencies: ['session-config', 'session-store'] })

/** A Cookie for what a plain object says of the expiry, every attribute from the policy. */
function rebuiltCookie (plain: unknown, policy: CookiePolicy, https: boolean): session.Cookie {
  const stored = (typeof plain === 'object' && plain !== null ? plain : {}) as Record<string, unknown>
  const cookie = new session.Cookie()
  applyCookiePolicy(cookie, policy, https, stored)
  return cookie
}

/**
 * Session#save, awaited (promisify would build a new function on every request). A session that
 * logout or a revocation ended while this request ran is not written back, and the answer says so
 * (409); data the database refuses is a 400. Either way no cookie names a session not written.
 */
function save (req: IncomingMessage): Promise<void> {
  const current = req.session as RequestSession
  return new Promise((resolve, reject) => current.save((error?: unknown) => {
    if (!error) return resolve()
    if (!(error instanceof SessionEndedError || error instanceof SessionRejectedError)) return reject(error)
    delete req.session
    reject(new HttpError(error.statusCode, error.message))
  }))
}

/**
 * express-session writes only `Expires`; the contract promises `Max-Age` too (browsers prefer it,
 * and it does not depend on the client's clock). It is the session cookie's own lifetime:
 * SESSION_MAX_AGE, or the shorter one a route gave it; none for a browser-session cookie.
 */
function maxAgeAdder (cookieName: string): (this: ServerResponse) => void {
  return function addMaxAge (this: ServerResponse) {
    const header = this.getHeader('set-cookie')
    const maxAgeMs = (this.req as IncomingMessage | undefined)?.session?.cookie.originalMaxAge
    if (header === undefined || typeof maxAgeMs !== 'number') return
    // Rounded: express-session derives originalMaxAge from `expires - Date.now()` right after setting
    // expires, so a route's `cookie.maxAge = 60000` may read 59999 when a millisecond ticked between.
    const attribute = `; Max-Age=${Math.round(maxAgeMs / 1000)}`
    const cookies = Array.isArray(header) ? header : [String(header)]
    this.setHeader('set-cookie', cookies.map((cookie) =>
      cookie.startsWith(`${cookieName}=`) && !/;\s*Max-Age=/i.test(cookie) ? cookie + attribute : cookie))
  }
}
