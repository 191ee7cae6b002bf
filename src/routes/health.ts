import type { FastifyInstance } from 'fastify'

const READY_DEADLINE_MS = 1000

const statusBody = {
  type: 'object',
  properties: { status: { type: 'string', enum: ['ok', 'unavailable'] } },
  required: ['status']
} as const

/** Probes for orchestrators: outside the session bridge, so they never create a session. */
export default async function healthRoutes (fastify: FastifyInstance) {
  fastify.get('/health/live', {
    schema: { summary: 'The process is up', tags: ['operations'], response: { 200: statusBody } }
  }, async () => ({ status: 'ok' }))

  fastify.get('/health/ready', {
    schema: { summary: 'The session store answers within 1 s', tags: ['operations'], response: { 200: statusBody, 503: statusBody } }
  }, async (_request, reply) => {
    try {
      await fastify.sessionStore.ping(READY_DEADLINE_MS)
      return { status: 'ok' }
    } catch {
      return reply.code(503).header('retry-after', '5').send({ status: 'unavailable' })
    }
  })
}
