import type { FastifyInstance } from 'fastify'
import { sessionEndsAt } from '../session/timeouts.js'

const sessionView = {
  type: 'object',
  properties: {
    authenticated: { type: 'boolean' },
    user: { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] },
    createdAt: { type: 'string', format: 'date-time' },
    expiresAt: { type: 'string', format: 'date-time' }
  },
  required: ['authenticated']
} as const

/** Routes that read and change the client's own session; registered behind the session bridge. */
export default async function sessionRoutes (fastify: FastifyInstance) {
  fastify.get('/session', {
    schema: { summary: 'The current session, without its id', response: { 200: sessionView } }
  }, async (request) => {
    const current = request.raw.session
    if (!current) return { authenticated: false }
    return {
      authenticated: current.user !== undefined,
      user: current.user,
      createdAt: new Date(current.createdAt ?? Date.now()).toISOString(),
      expiresAt: new Date(sessionEndsAt(current, fastify.config)).toISOString()
    }
  })
}
