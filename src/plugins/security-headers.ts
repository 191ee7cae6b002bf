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
    /**
     * Which headers a route's answers get: `page` (an HTML document: helmet's whole set, with the
     * page's CSP), `docs` (the API docs' pages), or by default `api`, the set that means something
     * for JSON and assets.
     */
    securityHeaders?: 'page' | 'docs' | 'api'
  }
}

/**
 * Helmet's headers. A document (the page, the API docs) gets helmet's whole set. Everything else
 * (the JSON API, the page's script and stylesheet, health, metrics, errors) gets the headers that
 * mean something for a resource that is not a document, as OWASP's REST cheat sheet lists them:
 * `nosniff`, `Cross-Origin-Resource-Policy` (no other site may load it with `<script>`/`<img>`),
 * HSTS, and no framing (`frame-ancestors 'none'` and `X-Frame-Options`), with `default-src 'none'`
 * for a JSON answer opened in a tab. The other seven of helmet's twelve (COOP, Origin-Agent-Cluster,
 * Referrer-Policy, X-DNS-Prefetch-Control, X-Download-Options, X-Permitted-Cross-Domain-Policies,
 * X-XSS-Protection) apply to documents only, and cost every read about 10% of its CPU time in
 * Node's header handling (docs/benchmarks.md). The JSON API is unaffected by any of them: CORP
 * applies to no-cors loads, not to the CORS fetches of a separate frontend.
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
  const headers = {
    page: helmetHeaders({ contentSecurityPolicy: { directives: pageDirectives }, referrerPolicy }),
    docs: helmetHeaders({ contentSecurityPolicy: { directives: docsDirectives }, referrerPolicy }),
    api: helmetHeaders({
      contentSecurityPolicy: { useDefaults: false, directives: { 'default-src': ["'none'"], 'frame-ancestors': ["'none'"] } },
      crossOriginOpenerPolicy: false,
      originAgentCluster: false,
      referrerPolicy: false,
      xDnsPrefetchControl: false,
      xDownloadOptions: false,
      xPermittedCrossDomainPolicies: false,
      xXssProtection: false
    })
  }
  // Added before the docs plugin registers its routes.
  fastify.addHook('onRoute', (route) => {
    if (route.url === DOCS_PREFIX || route.url.startsWith(`${DOCS_PREFIX}/`)) {
      route.config = { ...route.config, securityHeaders: 'docs' }
    }
  })
  fastify.addHook('onRequest', (request, reply, done) => {
    reply.headers(headers[request.routeOptions.config.securityHeaders ?? 'api'])
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
