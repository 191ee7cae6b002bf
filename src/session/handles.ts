import { createHmac } from 'node:crypto'

/**
 * The opaque handle by which a user names one of their sessions (GET /session/all, DELETE
 * /session/all/:id): a keyed hash of the session id, so the list never reveals an id that could
 * be replayed as a cookie, and a handle cannot be computed without the server's secret.
 */
export function sessionHandle (secret: string, sessionId: string): string {
  return createHmac('sha256', secret).update(`session-handle:${sessionId}`).digest('base64url').slice(0, 32)
}
