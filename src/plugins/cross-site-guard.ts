import fp from 'fastify-plugin'
import { splitList } from '../config/config.js'
import { HttpError } from '../http-error.js'

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS'])

/**
 * Refuses a state-changing request (login, logout, state, revocation) that a browser sent from a
 * page of another origin that CORS_ORIGINS does not list. SameSite=Lax already keeps the cookie off
 * such requests, but SameSite=None (a frontend on another site) does not, and a cross-site form
 * could then log a user out or in. Browsers always send `Origin` on these requests; clients that
 * send none (curl, servers) are not browsers and pass. Runs before the bridge (unless the app's own
 * @fastify/express runs first, see below): a refused request loads no session, and never makes one.
 */
export default fp(async function crossSiteGuard (fastify) {
  const allowed = new Set(splitList(fastify.sessionConfig.CORS_ORIGINS))
  fastify.addHook('onRequest', async (request) => {
    const origin = request.headers.origin
    if (SAFE_METHODS.has(request.method) || origin === undefined) return
    if (origin === `${request.protocol}://${request.host}` || allowed.has(origin)) return
    // Express middleware the app registered at a parent scope (its own @fastify/express) runs
    // before this hook, so express-session may have loaded or made a session already: drop it, so
    // the refusal creates and writes none.
    delete request.raw.session
    throw new HttpError(403, 'Cross-site request refused: this origin is not in CORS_ORIGINS')
  })
}, { name: 'cross-site-guard', dependencies: ['session-config'] })
