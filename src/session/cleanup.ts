import type { FastifyBaseLogger } from 'fastify'
import type { ManagedStore } from './managed-store.js'
import { scrubDatabaseError } from './store-errors.js'

/**
 * Runs the store's expired-session cleanup every `intervalMs` (0: never). The timer is unref'd so
 * it never keeps the process alive, a run never overlaps the previous one, and a failure is logged
 * and retried next time instead of escaping into the timer. Returns the function that stops it:
 * a run in progress ends after its current batch.
 */
export function scheduleCleanup (store: ManagedStore, intervalMs: number, log: FastifyBaseLogger): () => Promise<void> {
  if (intervalMs === 0) return async () => {}
  let running: Promise<void> | undefined
  const closing = new AbortController()
  const timer = setInterval(() => {
    running ??= store.cleanupExpired({ signal: closing.signal, intervalMs })
      .then((removed) => { if (removed > 0) log.info({ removed }, 'removed expired sessions') })
      .catch((error: unknown) => { log.warn({ err: scrubDatabaseError(error) }, 'expired-session cleanup failed; retrying at the next interval') })
      .finally(() => { running = undefined })
  }, intervalMs)
  timer.unref()
  return async () => {
    clearInterval(timer)
    closing.abort()
    await running
  }
}
