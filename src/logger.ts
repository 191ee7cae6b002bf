import type { LoggerOptions } from 'pino'

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
        method.apply(this, args)
      }
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
