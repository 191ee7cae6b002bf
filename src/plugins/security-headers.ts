import fastifyHelmet from '@fastify/helmet'
import fp from 'fastify-plugin'
import { DOCS_PREFIX } from './api-docs.js'

// Helmet's default Content-Security-Policy, stricter: styles, like scripts, only from this origin and
// never inline (the page has neither inline). `upgrade-insecure-requests` is dropped: on a
// plain-HTTP development server it would send the page's own requests to https://, where nothing
// listens; HTTPS deployments have HSTS for that.
const directives = {
  'style-src': ["'self'"],
  'upgrade-insecure-requests': null
}

// Swagger UI sets an inline style on its page; its scripts stay as strict as the page's.
const docsDirectives = { ...directives, 'style-src': ["'self'", "'unsafe-inline'"] }

/**
 * Helmet's headers on every answer. The JSON API is unaffected: CSP and framing rules apply to
 * documents, and Cross-Origin-Resource-Policy to no-cors loads, not to the CORS fetches of a
 * separate frontend.
 */
export default fp(async function securityHeaders (fastify) {
  // Added before helmet's own onRoute hook, which reads a route's `helmet` option, and before the
  // docs plugin registers its routes.
  fastify.addHook('onRoute', (route) => {
    if (route.url === DOCS_PREFIX || route.url.startsWith(`${DOCS_PREFIX}/`)) {
      route.helmet = { contentSecurityPolicy: { directives: docsDirectives } }
    }
  })
  await fastify.register(fastifyHelmet, { contentSecurityPolicy: { directives } })
}, { name: 'security-headers' })
