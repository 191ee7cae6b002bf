import Fastify, { type FastifyInstance, type RouteHandlerMethod, type RouteShorthandOptions } from 'fastify'
import { ConfigError, metricsSetting } from '../config/config.js'

const routeOptions: RouteShorthandOptions = {
  schema: {
    summary: 'Prometheus metrics: requests, store latency and errors, live sessions, logins, revocations',
    tags: ['operations'],
    response: {
      200: { description: 'Prometheus text exposition format', content: { 'text/plain': { schema: { type: 'string' } } } }
    }
  }
}

/**
 * GET /metrics, outside the session bridge like the health routes: a scrape creates no session
 * and runs no session query (the live-sessions count is cached). METRICS=on serves it here,
 * off nowhere, and a port number on a listener of its own (same HOST), absent from the main port.
 */
export default async function metricsRoutes (fastify: FastifyInstance) {
  const { registry } = fastify.metrics
  const serve: RouteHandlerMethod = async (_request, reply) => {
    const text = await registry.metrics()
    return reply.type(registry.contentType).header('cache-control', 'no-store').send(text)
  }

  const setting = metricsSetting(fastify.sessionConfig)
  if (setting === 'on') fastify.get('/metrics', routeOptions, serve)
  if (typeof setting !== 'number') return

  const metricsServer = Fastify({ logger: false })
  metricsServer.get('/metrics', routeOptions, serve)
  const host = fastify.sessionConfig.HOST
  // At ready, so a port that is taken stops start-up (an onListen failure would only be logged).
  fastify.addHook('onReady', async () => {
    try {
      await metricsServer.listen({ host, port: setting })
    } catch (error) {
      throw new ConfigError(`METRICS=${setting}: cannot listen on ${host}:${setting} (${(error as NodeJS.ErrnoException).code ?? String(error)})`)
    }
    fastify.log.info({ url: `http://${host}:${setting}/metrics` }, 'metrics served on their own port')
  })
  fastify.addHook('onClose', async () => { await metricsServer.close() })
}
