import fastifySwagger from '@fastify/swagger'
import fastifySwaggerUi from '@fastify/swagger-ui'
import fp from 'fastify-plugin'

export const DOCS_PREFIX = '/docs'

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
          sessionCookie: { type: 'apiKey', in: 'cookie', name: fastify.config.SESSION_COOKIE_NAME }
        }
      },
      security: [{ sessionCookie: [] }]
    }
  })
  await fastify.register(fastifySwaggerUi, { routePrefix: DOCS_PREFIX })
}, { name: 'api-docs', dependencies: ['config'] })
