import fastifyCors from '@fastify/cors'
import fp from 'fastify-plugin'
import { splitList } from '../config/config.js'

/**
 * CORS for a frontend served from another origin (CORS_ORIGINS, exact origins). A listed origin is
 * echoed with `Access-Control-Allow-Credentials: true`, so the browser sends and keeps the session
 * cookie; any other origin, or none, gets no CORS header at all (an array `origin` option would
 * still send Allow-Credentials to everyone).
 *
 * Its hook sits at the root, before the session bridge of the session scope, so the error answers
 * of session routes (401, 403, 503) carry the headers too: a browser hides a response without them.
 * A preflight is answered by @fastify/cors's own `OPTIONS *` route at the root, outside the bridge,
 * so it never creates a session.
 */
export default fp(async function cors (fastify) {
  const allowed = new Set(splitList(fastify.sessionConfig.CORS_ORIGINS))
  await fastify.register(fastifyCors, {
    origin: (origin, callback) => callback(null, origin !== undefined && allowed.has(origin)),
    credentials: true,
    methods: ['GET', 'HEAD', 'POST', 'PUT', 'DELETE'],
    allowedHeaders: ['Content-Type'],
    // Not CORS-safelisted: without this a frontend could not read how long to wait after 429 or 503.
    exposedHeaders: ['Retry-After'],
    maxAge: 600
  })
}, { name: 'cors', dependencies: ['session-config'] })
