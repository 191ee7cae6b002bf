import { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import { destination, type DestinationStream, type LoggerOptions } from 'pino'

// Query parameters that carry a credential: the provider's code and state on /auth/callback (and
// tokens, should a provider ever put one in a URL).
const SECRET_PARAMETERS = /([?&](?:code|state|session_state|id_token|access_token|refresh_token|logout_token|id_token_hint)=)[^&#\s]*/gi

/** The request URL as it is logged: credentials in the query replaced. */
export function loggedUrl (url: string): string {
  return url.includes('?') ? url.replace(SECRET_PARAMETERS, '$1[redacted]') : url
}

function isFastifyRequest (value: unknown): value is FastifyRequest {
  return typeof value === 'object' && value !== null && 'raw' in value && typeof (value as FastifyRequest).url === 'string'
}

/**
 * pino options for the server. The level is set from LOG_LEVEL once the configuration is
 * validated; `redact` keeps cookies, credentials and passwords out of every line.
 */
export function loggerOptions (): LoggerOptions {
  let listeningLogged = false
  return {
    level: 'info',
    hooks: {
      // Bound to 0.0.0.0, Fastify logs "Server listening at" once per network interface; the
      // contract promises one line, so the first (the loopback URL) is kept.
      logMethod (args, method) {
        const listening = typeof args[0] === 'string' && args[0].startsWith('Server listening at ')
        if (listening && listeningLogged) return
        listeningLogged ||= listening
        // Messages that quote a URL (Fastify's "Route GET:/auth/callback/?code=… not found").
        method.apply(this, args.map((arg) => typeof arg === 'string' ? loggedUrl(arg) : arg) as typeof args)
      }
    },
    serializers: {
      // Fastify's own request serializer, with the URL's credentials redacted; a `req` that is not
      // a Fastify request (a line of the app's own) is left to `redact`.
      req: (request: FastifyRequest | Record<string, unknown>) => isFastifyRequest(request)
        ? {
            method: request.method,
            url: loggedUrl(request.url),
            host: request.host,
            remoteAddress: request.ip,
            remotePort: request.socket?.remotePort
          }
        : request
    },
    redact: {
      paths: [
        'req.headers.cookie',
        'req.headers.authorization',
        'res.headers["set-cookie"]',
        '*.password',
        'err.sql'
      ],
      censor: '[redacted]'
    }
  }
}

/**
 * One line per request, where Fastify logs two ("incoming request" on arrival, "request
 * completed" when answered): the request (method, URL with credentials redacted, host, client
 * address and port), the status and the time, together. Each line costs a read about 10% of its
 * CPU time (docs/benchmarks.md). A failed answer is "request errored" at error level, and a
 * request its client abandons before the answer "request aborted" (see `logAbortedRequests`),
 * each with the request too.
 */
export class OneLinePerRequest extends LogController {
  override incomingRequest (): void {}

  override requestCompleted (error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (this.isLogDisabled(request)) return
    if (error) reply.log.error({ req: request, res: reply, err: error, responseTime: reply.elapsedTime }, 'request errored')
    else reply.log.info({ req: request, res: reply, responseTime: reply.elapsedTime }, 'request completed')
  }
}

/** The line of a request whose client went away before its answer: nothing else would log it. */
export function logAbortedRequests (app: FastifyInstance): void {
  app.addHook('onRequestAbort', (request, done) => {
    request.log.info({ req: request }, 'request aborted')
    done()
  })
}

// How long a line may wait in the buffer on a quiet server.
const FLUSH_EVERY_MS = 1000

/**
 * Standard output. In production, written in blocks of 4 KiB (and at least every second) instead
 * of one `write(2)` per line: a busy server writes once every dozen requests. Writes stay
 * synchronous, as pino's default: the order stays, and what is buffered goes out when the process
 * exits (SIGTERM and uncaught errors end through exit); a SIGKILL loses at most the last second.
 * The buffer goes out through `flush`, which in this synchronous mode writes at once and, like
 * every write, stops logging quietly when the reader of stdout is gone (pino's broken-pipe rule);
 * sonic-boom's `flushSync` would instead retry such a write forever with the event loop blocked.
 * While developing, every line at once.
 */
export function logDestination (buffered: boolean, fd = 1): DestinationStream & { flush: () => void } {
  if (!buffered) return destination({ dest: fd, sync: true })
  const stream = destination({ dest: fd, sync: true, minLength: 4096, periodicFlush: FLUSH_EVERY_MS })
  process.once('exit', () => stream.flush())
  return stream
}
