import { STATUS_CODES } from 'node:http'
import type { FastifyError } from 'fastify'
import fp from 'fastify-plugin'
import { HttpError } from '../http-error.js'
import { StoreUnavailableError, scrubDatabaseError } from '../session/store-errors.js'

/**
 * The one error handler: JSON `{statusCode, error, message}` for everything, with the message of
 * every unexpected 5xx replaced (no SQL, host or stack reaches a client), store failures as 503 with
 * Retry-After (the session bridge makes sure a failed answer carries no session cookie).
 */
export default fp(async function errorHandler (fastify) {
  fastify.setErrorHandler(function handleError (error: FastifyError, request, reply) {
    const statusCode = statusOf(error)
    if (statusCode >= 500) {
      request.log[statusCode === 503 ? 'warn' : 'error']({ err: scrubDatabaseError(error) }, 'request failed')
    }
    if (error instanceof StoreUnavailableError || error instanceof HttpError) reply.headers(error.headers ?? {})
    return reply.code(statusCode).send({
      statusCode,
      error: (error instanceof HttpError ? error.error : undefined) ?? STATUS_CODES[statusCode] ?? 'Error',
      message: messageFor(statusCode, error)
    })
  })
}, { name: 'error-handler' })

function statusOf (error: FastifyError): number {
  if (error instanceof URIError) return 400 // a malformed %-escape in the URL
  const status = error.statusCode
  return typeof status === 'number' && status >= 400 && status <= 599 ? status : 500
}

function messageFor (statusCode: number, error: FastifyError): string {
  if (statusCode < 500 || error instanceof HttpError) return error.message
  if (statusCode === 503) return 'The session store is unavailable; retry later'
  return 'Something went wrong on our side'
}
