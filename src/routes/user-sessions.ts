import { withUser, type AuthenticatedScope } from '../auth/require-user.js'
import { sessionHandle } from '../session/handles.js'
import { destroySession } from '../session/managed-store.js'
import { metricsOf } from '../plugins/metrics.js'
import { summarizeSessions } from '../session/summaries.js'
import { errorBody } from './schemas.js'
import { endCurrentSession } from './login.js'

const sessionEntry = {
  type: 'object',
  properties: {
    id: { type: 'string', description: 'An opaque handle, never the session id' },
    current: { type: 'boolean' },
    createdAt: { type: 'string', format: 'date-time' },
    lastSeenAt: { type: 'string', format: 'date-time', description: 'Last use, to within SESSION_TOUCH_AFTER; never before createdAt' },
    userAgent: { type: ['string', 'null'], description: 'The User-Agent header of the login, as sent' },
    device: { type: 'string', description: 'The browser and system that header names, for people: "Chrome on Linux", "Safari on iPhone", "Unknown browser"' },
    ip: { type: ['string', 'null'] }
  },
  required: ['id', 'current', 'createdAt', 'lastSeenAt', 'userAgent', 'device', 'ip']
} as const

const authErrors = { 401: errorBody, 503: errorBody } as const

/** "My sessions": list them, end one, end all the others. Only ever the caller's own. */
export default withUser(async function userSessionRoutes (fastify: AuthenticatedScope) {
  const { sessionConfig: config, sessionStore } = fastify
  const metrics = metricsOf(fastify)
  const handleOf = (sessionId: string) => sessionHandle(config.SESSION_SECRET as string, sessionId)

  fastify.get('/session/all', {
    schema: {
      summary: 'Every live session of the logged-in user',
      tags: ['sessions'],
      response: { 200: { type: 'array', items: sessionEntry }, ...authErrors }
    }
  }, async (request) => {
    const sessions = await sessionStore.sessionsOf(request.raw.session.user)
    return summarizeSessions(sessions, config, request.raw.sessionID)
  })

  fastify.delete<{ Params: { id: string } }>('/session/all/:id', {
    schema: {
      summary: 'End one of the logged-in user\'s sessions',
      tags: ['sessions'],
      params: { type: 'object', properties: { id: { type: 'string', maxLength: 64 } }, required: ['id'] },
      response: { 204: { type: 'null', description: 'Ended' }, 404: errorBody, ...authErrors }
    }
  }, async (request, reply) => {
    const sessions = await sessionStore.sessionsOf(request.raw.session.user)
    const target = sessions.find(({ id }) => handleOf(id) === request.params.id)
    if (!target) return reply.code(404).send({ statusCode: 404, error: 'Not Found', message: 'No such session of yours' })
    if (target.id === request.raw.sessionID) {
      await endCurrentSession(request, reply, config)
    } else {
      await destroySession(sessionStore, target.id)
    }
    metrics?.sessionsRevoked('revoke_one', 1)
    return reply.code(204).send()
  })

  fastify.delete('/session/all', {
    schema: {
      summary: 'End every other session of the logged-in user',
      tags: ['sessions'],
      response: {
        200: { type: 'object', properties: { revoked: { type: 'integer' } }, required: ['revoked'] },
        ...authErrors
      }
    }
  }, async (request) => {
    const revoked = await sessionStore.endSessionsOf(request.raw.session.user, request.raw.sessionID)
    metrics?.sessionsRevoked('revoke_others', revoked)
    return { revoked }
  })
})
