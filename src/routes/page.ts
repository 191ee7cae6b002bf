import { readFileSync } from 'node:fs'
import type { FastifyContextConfig, FastifyInstance } from 'fastify'

// src/web/ under tsx, dist/web/ once built (scripts/build.mjs copies it: tsc does not).
const WEB_DIR = new URL('../web/', import.meta.url)

const PAGE_FILES = [
  { url: '/', file: 'index.html', type: 'text/html', summary: 'The page: log in, see and end one\'s sessions, log out' },
  { url: '/assets/app.js', file: 'app.js', type: 'text/javascript', summary: 'The page\'s script' },
  { url: '/assets/style.css', file: 'style.css', type: 'text/css', summary: 'The page\'s stylesheet' }
] as const

/**
 * The browser page and its script and stylesheet, read once at start. Outside the session bridge:
 * loading them creates no session; the page's script uses the JSON API, which does.
 */
export default async function pageRoutes (fastify: FastifyInstance) {
  // The ways to log in this server offers, for the page to show (on <body>: data-sso, data-password-login).
  // Without SSO the password form stays, even unconfigured: its 503 says how to configure it.
  const sso = Boolean(fastify.sessionConfig.OIDC_ISSUER)
  const passwords = Boolean(fastify.authenticator) || !sso
  const offers = `<body data-sso="${sso ? 'on' : 'off'}" data-password-login="${passwords ? 'on' : 'off'}">`
  for (const { url, file, type, summary } of PAGE_FILES) {
    const source = readFileSync(new URL(file, WEB_DIR))
    const body = file === 'index.html' ? source.toString('utf8').replace('<body>', offers) : source
    const schema = { summary, tags: ['page'], response: { 200: { description: file, content: { [type]: { schema: { type: 'string' } } } } } }
    // The page is a document: helmet's whole set of headers; its script and stylesheet the API's.
    const config: FastifyContextConfig = { securityHeaders: file === 'index.html' ? 'page' : 'api' }
    fastify.get(url, { schema, config }, async (_request, reply) => {
      // no-cache: revalidated on every load, so a deployment's new script reaches the next visit.
      return reply.type(`${type}; charset=utf-8`).header('cache-control', 'no-cache').send(body)
    })
  }
}
