import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { StoreObserver } from '../session/mysql-store.js'

/** How long the live-sessions count is reused: a scrape never costs a COUNT over the table more often. */
export const LIVE_SESSIONS_TTL_MS = 5000

export type LoginOutcome = 'success' | 'invalid' | 'throttled' | 'unavailable'
export type RevocationReason = 'logout' | 'revoke_one' | 'revoke_others' | 'admin' | 'backchannel_logout'

const LOGIN_OUTCOMES: LoginOutcome[] = ['success', 'invalid', 'throttled', 'unavailable']
const REVOCATION_REASONS: RevocationReason[] = ['logout', 'revoke_one', 'revoke_others', 'admin', 'backchannel_logout']

export interface Metrics {
  /** This app's own registry: several apps in one process (the tests) never share a counter. */
  registry: Registry
  /** Given to the MySQL store, which reports each of its database operations to it. */
  observeStore: StoreObserver
  loginAttempted (outcome: LoginOutcome): void
  sessionsRevoked (reason: RevocationReason, count: number): void
}

declare module 'fastify' {
  interface FastifyInstance {
    metrics: Metrics
  }
}

/** The app's metrics, if it registered the plugin: the built-in routes count through it when there. */
export function metricsOf (fastify: Pick<FastifyInstance, 'hasDecorator' | 'metrics'>): Metrics | undefined {
  return fastify.hasDecorator('metrics') ? fastify.metrics : undefined
}

/**
 * Prometheus metrics in a registry of this app's own. Registered before everything else, so its
 * `onResponse` hook counts every route. GET /metrics itself is registered with the routes
 * (src/routes/metrics.ts), outside the session bridge.
 */
export default fp(async function metricsPlugin (fastify) {
  const registry = new Registry()
  const registers = [registry]

  const httpLabels = ['method', 'route', 'status_code'] as const
  const requestSeconds = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'Time from receiving a request to finishing its answer, by route template and status code',
    labelNames: httpLabels,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5],
    registers
  })
  // eslint-disable-next-line no-new -- as the gauges below
  new Counter({
    name: 'http_requests_total',
    help: 'HTTP requests answered, by route template and status code',
    labelNames: httpLabels,
    registers,
    // The histogram's counts, copied when scraped: a request then pays for one labelled series, not
    // two (prom-client validates and hashes the labels on every call).
    async collect () {
      this.reset()
      for (const { metricName, labels, value } of (await requestSeconds.get()).values) {
        if (metricName === 'http_request_duration_seconds_count') this.inc(labels as Record<string, string | number>, value)
      }
    }
  })
  fastify.addHook('onResponse', (request, reply, done) => {
    // The route's template, never the raw URL: one series per route, whatever ids clients send.
    requestSeconds.observe({ method: request.method, route: request.routeOptions.url ?? 'unmatched', status_code: reply.statusCode }, reply.elapsedTime / 1000)
    done()
  })

  const storeSeconds = new Histogram({
    name: 'session_store_query_duration_seconds',
    help: 'Session store database operations, waiting for a pooled connection included, by operation',
    labelNames: ['operation'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers
  })
  const storeErrors = new Counter({ name: 'session_store_errors_total', help: 'Session store database operations that failed or missed their deadline', labelNames: ['operation'], registers })

  const liveSessions = cachedCount(() => fastify.sessionStore.countLive(), LIVE_SESSIONS_TTL_MS)
  // eslint-disable-next-line no-new -- prom-client registers a metric in its constructor; nothing else needs this one
  new Gauge({
    name: 'sessions_live',
    help: `Sessions that have not expired (counted at most every ${LIVE_SESSIONS_TTL_MS / 1000} s)`,
    registers,
    async collect () {
      const count = await liveSessions()
      if (count !== undefined) this.set(count)
    }
  })

  // eslint-disable-next-line no-new -- as above
  new Gauge({
    name: 'session_store_node_usable',
    help: 'Whether the store sends queries to each database server of SESSION_HOST: 1, or 0 while it does not answer or, on Galera, is not Synced in the primary component',
    labelNames: ['node'],
    registers,
    collect () {
      for (const { node, usable } of fastify.sessionStore.databaseNodes?.() ?? []) this.set({ node }, usable ? 1 : 0)
    }
  })

  const logins = new Counter({ name: 'session_logins_total', help: 'Login attempts by outcome: success, invalid (credentials), throttled (429), unavailable (503)', labelNames: ['outcome'], registers })
  const revoked = new Counter({ name: 'sessions_revoked_total', help: 'Sessions ended before they expired, by reason: logout, revoke_one, revoke_others, admin, backchannel_logout', labelNames: ['reason'], registers })
  // Every series exists from the start at 0, so a rate() over a first failure is not lost.
  for (const outcome of LOGIN_OUTCOMES) logins.inc({ outcome }, 0)
  for (const reason of REVOCATION_REASONS) revoked.inc({ reason }, 0)

  fastify.decorate('metrics', {
    registry,
    observeStore (operation, seconds, failed) {
      storeSeconds.observe({ operation }, seconds)
      if (failed) storeErrors.inc({ operation })
    },
    loginAttempted (outcome) { logins.inc({ outcome }) },
    sessionsRevoked (reason, count) { revoked.inc({ reason }, count) }
  } satisfies Metrics)
}, { name: 'metrics' })

/**
 * `count()` at most once per `ttlMs`, and only when asked: scrapes that come together share one
 * count, and a failed count keeps the last value (undefined before the first) until the next try.
 */
function cachedCount (count: () => Promise<number>, ttlMs: number): () => Promise<number | undefined> {
  let value: number | undefined
  let countedAt = -Infinity
  let pending: Promise<number | undefined> | undefined
  return () => {
    if (Date.now() - countedAt < ttlMs) return Promise.resolve(value)
    pending ??= count()
      .then((fresh) => { value = fresh }, () => {})
      .then(() => {
        countedAt = Date.now()
        pending = undefined
        return value
      })
    return pending
  }
}
