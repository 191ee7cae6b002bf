import fastifySwagger from '@fastify/swagger'
import fastifySwaggerUi from '@fastify/swagger-ui'
import type { RouteOptions } from 'fastify'
import fp from 'fastify-plugin'

export const DOCS_PREFIX = '/docs'
const SESSION_COOKIE = 'sessionCookie'

/**
 * onRoute hook of the session scope: every route behind the session bridge reads the session
 * cookie, and its operation in the document says so. The routes outside it (health, metrics, the
 * page) need none, so the cookie is not a global requirement.
 */
export function declareSessionCookie (route: RouteOptions): void {
  route.schema = { ...route.schema, security: route.schema?.security ?? [{ [SESSION_COOKIE]: [] }] }
}

/**
 * The OpenAPI document (GET /docs/json) and its UI (GET /docs), generated from the routes' own
 * JSON schemas. Registered before the routes so it sees all of them; outside the session scope.
 */
export default fp(async function apiDocs (fastify) {
  await fastify.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Session backend',
        description: 'express-session on MySQL/MariaDB behind Fastify: sessions, login, logout, the user\'s own sessions.',
        version: '0.1.0'
      },
      components: {
        securitySchemes: {
          [SESSION_COOKIE]: { type: 'apiKey', in: 'cookie', name: fastify.sessionConfig.SESSION_COOKIE_NAME }
        }
      }
    }
  })
  await fastify.register(fastifySwaggerUi, { routePrefix: DOCS_PREFIX })
}, { name: 'api-docs', dependencies: ['session-config'] })
