import type { FastifyInstance, FastifyRequest } from 'fastify'
import { HttpError } from '../http-error.js'
import type { RequestSession } from '../session/session-data.js'
import { lifetimePolicy } from '../config/config.js'
import { isSessionUser } from '../session/identity.js'
import { enforcedEndOf } from '../session/lifetime.js'
import { nestingDepth } from '../session/stored-data.js'
import { STATE_MAX_BYTES, STATE_MAX_DEPTH, anyJson, errorBody, sessionRouteErrors, userBody } from './schemas.js'

const sessionView = {
  type: 'object',
  properties: {
    authenticated: { type: 'boolean' },
    user: userBody,
    createdAt: { type: 'string', format: 'date-time' },
    expiresAt: { type: 'string', format: 'date-time' },
    state: anyJson
  },
  required: ['authenticated']
} as const

/** The session a route may write to; absent when a Secure cookie cannot reach this client. */
export function writableSession (session: RequestSession | undefined): RequestSession {
  if (!session) throw new HttpError(403, 'This needs HTTPS: the session cookie is Secure (SESSION_COOKIE_SECURE=true)')
  return session
}

/**
 * onRequest: 415 unless the body, if any, is declared JSON (parameters such as charset allowed).
 * Fastify also parses text/plain by default, which would store the text as a string state.
 */
async function jsonBodyOnly (request: FastifyRequest): Promise<void> {
  const type = request.headers['content-type']
  if (type !== undefined && !/^application\/json\s*(?:;|$)/i.test(type)) {
    throw new HttpError(415, 'Send the state as JSON (Content-Type: application/json)')
  }
}

/** Routes that read and change the client's own session; registered behind the session bridge. */
export default async function sessionRoutes (fastify: FastifyInstance) {
  const lifetime = lifetimePolicy(fastify.sessionConfig)

  fastify.get('/session', {
    schema: {
      summary: 'The current session, without its id',
      tags: ['session'],
      response: { 200: sessionView, 503: errorBody }
    }
  }, async (request) => {
    const current = request.raw.session
    if (!current) return { authenticated: false }
    // A `user` of another shape that no mapper recognized is not a login (identity.ts).
    const user = isSessionUser(current.user) ? current.user : undefined
    return {
      authenticated: user !== undefined,
      user,
      createdAt: new Date(current.createdAt ?? Date.now()).toISOString(),
      expiresAt: new Date(enforcedEndOf(current.id, current, lifetime, fastify.sessionConfig.SESSION_RESAVE)).toISOString(),
      state: current.state ?? null
    }
  })

  fastify.put('/session/state', {
    // Fastify refuses anything much larger with 413 before parsing it.
    bodyLimit: 16 * STATE_MAX_BYTES,
    onRequest: jsonBodyOnly,
    schema: {
      summary: `Replace the client's own JSON state (at most ${STATE_MAX_BYTES} bytes serialized)`,
      tags: ['session'],
      body: anyJson,
      response: {
        200: anyJson,
        400: errorBody,
        409: { ...errorBody, description: 'The session ended (logout, revocation) while this request ran; nothing was saved' },
        413: errorBody,
        415: errorBody,
        ...sessionRouteErrors
      }
    }
  }, async (request) => {
    const current = writableSession(request.raw.session)
    const state: unknown = request.body
    if (state === undefined) throw new HttpError(400, 'Send the state as a JSON body (Content-Type: application/json)')
    // Checked before anything serializes it: JSON.stringify recurses, and a few KiB of brackets
    // nest deep enough to overflow the stack.
    if (nestingDepth(state) > STATE_MAX_DEPTH) {
      throw new HttpError(400, `The state must nest at most ${STATE_MAX_DEPTH} levels deep`)
    }
    if (Buffer.byteLength(JSON.stringify(state)) > STATE_MAX_BYTES) {
      throw new HttpError(413, `The state must be at most ${STATE_MAX_BYTES} bytes as JSON`)
    }
    current.state = state
    return state
  })
}
