import { Type, type Static, type TSchema } from '@sinclair/typebox'

// Each property carries the `errorMessage` (ajv-errors) that a bad value produces, so the message a
// person reads at start-up lives next to the rule it explains. The type below is derived from this
// schema, never written a second time.

function choice<const T extends readonly string[]> (values: T, defaultValue: T[number]) {
  return Type.Unsafe<T[number]>({
    type: 'string',
    enum: [...values],
    default: defaultValue,
    errorMessage: `must be one of ${values.join(', ')}`
  })
}

function integer (minimum: number, maximum: number, defaultValue: number, rule: string) {
  return Type.Integer({ minimum, maximum, default: defaultValue, errorMessage: `must be ${rule}` })
}

function optional<T extends TSchema> (schema: T) {
  return Type.Optional(schema)
}

const MAX_MS = 10 * 365 * 24 * 3600 * 1000 // ten years: anything beyond is a typo, not a policy

export const configSchema = Type.Object({
  NODE_ENV: choice(['development', 'production', 'test'] as const, 'development'),
  HOST: Type.String({ minLength: 1, default: '0.0.0.0', errorMessage: 'must be a host name or address' }),
  PORT: integer(0, 65535, 9000, 'an integer 0-65535'),
  LOG_LEVEL: choice(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const, 'info'),
  TRUST_PROXY: Type.String({ default: 'false', errorMessage: 'must be a string' }),

  SESSION_SECRET: optional(Type.String({ errorMessage: 'must be a string' })),
  SESSION_PREVIOUS_SECRETS: Type.String({ default: '', errorMessage: 'must be a comma-separated list' }),

  // One server, or a Galera cluster's nodes as `host[:port],host[:port],...` (databaseEndpoints()).
  SESSION_HOST: optional(Type.String({ errorMessage: 'must be a host name or address, or several as host[:port],host[:port]' })),
  SESSION_PORT: integer(1, 65535, 3306, 'an integer 1-65535'),
  SESSION_USER: optional(Type.String({ errorMessage: 'must be a string' })),
  SESSION_PASSWORD: Type.String({ default: '', errorMessage: 'must be a string' }),
  SESSION_DATABASE: optional(Type.String({
    pattern: '^[A-Za-z0-9_$-]{1,64}$',
    errorMessage: 'must be 1-64 characters of A-Z, a-z, 0-9, _, $ or -'
  })),
  SESSION_TABLE: Type.String({
    pattern: '^[A-Za-z0-9_]{1,64}$',
    default: 'sessions',
    errorMessage: 'must match ^[A-Za-z0-9_]{1,64}$'
  }),

  SESSION_MAX_AGE: integer(1000, MAX_MS, 2628000000, 'an integer number of milliseconds, at least 1000'),
  SESSION_ABSOLUTE_TIMEOUT: integer(0, MAX_MS, 0, 'an integer number of milliseconds (0 turns it off)'),
  // A session that carries nothing yet (saveUninitialized stores every visit) is kept this long
  // idle, so cookieless requests cannot fill the table for a whole SESSION_MAX_AGE each.
  SESSION_ANONYMOUS_MAX_AGE: integer(0, MAX_MS, 3600000, 'an integer number of milliseconds (0: the same as SESSION_MAX_AGE)'),
  SESSION_TOUCH_AFTER: optional(Type.Integer({
    minimum: 0,
    maximum: MAX_MS,
    errorMessage: 'must be an integer number of milliseconds'
  })),
  SESSION_CLEANUP_INTERVAL: integer(0, MAX_MS, 900000, 'an integer number of milliseconds (0 turns cleanup off)'),
  SESSION_RESAVE: Type.Boolean({ default: false, errorMessage: 'must be true or false' }),
  SESSION_SAVE_UNINITIALIZED: Type.Boolean({ default: true, errorMessage: 'must be true or false' }),

  SESSION_COOKIE_NAME: Type.String({
    // RFC 6265 token characters
    pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$",
    default: 'sid',
    errorMessage: 'must be 1-64 cookie-name characters (letters, digits, !#$%&\'*+-.^_`|~)'
  }),
  SESSION_COOKIE_SECURE: choice(['true', 'false', 'auto'] as const, 'true'),
  SESSION_COOKIE_SAMESITE: choice(['lax', 'strict', 'none'] as const, 'lax'),

  CORS_ORIGINS: Type.String({ default: '', errorMessage: 'must be a comma-separated list of origins' }),
  AUTH_USERS_FILE: optional(Type.String({ errorMessage: 'must be a file path' })),

  // Single sign-on (OpenID Connect): off unless OIDC_ISSUER is set; the rules that tie these
  // together (a client with an issuer, an https PUBLIC_URL in production) are in finalizeConfig.
  PUBLIC_URL: optional(Type.String({ errorMessage: 'must be a URL such as https://app.example' })),
  OIDC_ISSUER: optional(Type.String({ errorMessage: 'must be the provider\'s issuer URL' })),
  OIDC_CLIENT_ID: optional(Type.String({ minLength: 1, errorMessage: 'must be the client id registered at the provider' })),
  OIDC_CLIENT_SECRET: optional(Type.String({ minLength: 1, errorMessage: 'must be the client secret registered at the provider' })),
  OIDC_SCOPES: Type.String({
    pattern: '^[\\x21\\x23-\\x5B\\x5D-\\x7E]+( [\\x21\\x23-\\x5B\\x5D-\\x7E]+)*$',
    default: 'openid profile email',
    errorMessage: 'must be scopes separated by single spaces, such as "openid profile email"'
  }),

  // on: GET /metrics on PORT; off: no such route; a port: its own listener there (HOST too), so
  // the metrics can be kept off the port the public reaches.
  METRICS: Type.String({
    pattern: '^(on|off|[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$',
    default: 'on',
    errorMessage: 'must be on, off or a port number 1-65535'
  })
})

export type Config = Static<typeof configSchema>
