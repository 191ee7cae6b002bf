import type { FastifyRequest } from 'fastify'
import type { LoggerOptions } from 'pino'

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
