import fp from 'fastify-plugin'
import helmet, { type HelmetOptions } from 'helmet'
import { DOCS_PREFIX } from './api-docs.js'

// Helmet's default Content-Security-Policy, stricter: styles, like scripts, only from this origin and
// never inline (the page has neither inline). `upgrade-insecure-requests` is dropped: on a
// plain-HTTP development server it would send the page's own requests to https://, where nothing
// listens; HTTPS deployments have HSTS for that.
const directives = {
  'style-src': ["'self'"],
  'upgrade-insecure-requests': null
}

// same-origin rather than helmet's no-referrer: under no-referrer Chromium sends `Origin: null` with
// the page's own form posts (the SSO logout form), which the cross-site guard must refuse. Other
// origins still get no referrer, and a cross-site form post still says `Origin: null`.
const referrerPolicy = { policy: 'same-origin' } as const

// Swagger UI sets an inline style on its page; its scripts stay as strict as the page's.
const docsDirectives = { ...directives, 'style-src': ["'self'", "'unsafe-inline'"] }

declare module 'fastify' {
  interface FastifyContextConfig {
    securityHeaders?: Record<string, string>
  }
}

/**
 * Helmet's headers on every answer. The JSON API is unaffected: CSP and framing rules apply to
 * documents, and Cross-Origin-Resource-Policy to no-cors loads, not to the CORS fetches of a
 * separate frontend.
 *
 * Helmet's values depend on nothing in the request (no nonces here), so they are computed once per
 * policy at start; @fastify/helmet built and ran a new helmet middleware on every request, 2-3%
 * of a session read's CPU time (docs/benchmarks.md).
 */
export default fp(async function securityHeaders (fastify) {
  // The page's logout form is answered with a redirect to the identity provider's end-session
  // page, and form-action covers the redirects of a submitted form.
  const issuer = fastify.sessionConfig.OIDC_ISSUER
  const pageDirectives = issuer ? { ...directives, 'form-action': ["'self'", new URL(issuer).origin] } : directives
  const pageHeaders = helmetHeaders({ contentSecurityPolicy: { directives: pageDirectives }, referrerPolicy })
  const docsHeaders = helmetHeaders({ contentSecurityPolicy: { directives: docsDirectives }, referrerPolicy })
  // Added before the docs plugin registers its routes.
  fastify.addHook('onRoute', (route) => {
    if (route.url === DOCS_PREFIX || route.url.startsWith(`${DOCS_PREFIX}/`)) {
      route.config = { ...route.config, securityHeaders: docsHeaders }
    }
  })
  fastify.addHook('onRequest', (request, reply, done) => {
    reply.headers(request.routeOptions.config.securityHeaders ?? pageHeaders)
    done()
  })
}, { name: 'security-headers', dependencies: ['session-config'] })

/** Runs helmet once against a response that only records what it sets. */
function helmetHeaders (options: HelmetOptions): Record<string, string> {
  const headers: Record<string, string> = {}
  const recorder = {
    setHeader (name: string, value: unknown) { headers[name.toLowerCase()] = String(value) },
    removeHeader (name: string) { delete headers[name.toLowerCase()] }
  }
  helmet(options)({} as never, recorder as never, (error?: unknown) => {
    if (error) throw error
  })
  return headers
}
