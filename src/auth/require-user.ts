import type { IncomingMessage } from 'node:http'
import type { FastifyInstance, FastifyRequest, RawServerDefault } from 'fastify'
import { HttpError } from '../http-error.js'
import { isSessionUser } from '../session/identity.js'
import type { RequestSession, SessionUser } from '../session/session-data.js'

/** A raw request whose session is known to belong to a logged-in user. */
export interface AuthenticatedRawRequest extends IncomingMessage {
  session: RequestSession & { user: SessionUser }
  sessionID: string
}

/** A Fastify scope in which every route runs after `requireUser`. */
export type AuthenticatedScope = FastifyInstance<RawServerDefault, AuthenticatedRawRequest>

/**
 * preHandler: 401 JSON unless the request's session has a logged-in user: a `user` of the shape
 * `{ name }` (a user of another shape that the store's mapper found in it is, see identity.ts).
 */
export async function requireUser (request: FastifyRequest): Promise<void> {
  if (!isSessionUser(request.raw.session?.user)) throw new HttpError(401, 'Log in first')
}

/**
 * Registers routes behind `requireUser`, in a scope typed so that `request.raw.session.user` is
 * not optional: the hook has checked it before any handler in the scope runs.
 */
export function withUser (routes: (scope: AuthenticatedScope) => Promise<void>) {
  return async function authenticatedRoutes (fastify: FastifyInstance) {
    fastify.addHook('preHandler', requireUser)
    await routes(fastify as unknown as AuthenticatedScope)
  }
}
