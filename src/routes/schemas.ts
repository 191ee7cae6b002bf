// JSON schemas shared by the routes: they validate input, drive response serialization (which
// also keeps anything not listed, like the session id, out of a body) and feed the API docs.

export const errorBody = {
  type: 'object',
  properties: {
    statusCode: { type: 'integer' },
    error: { type: 'string' },
    message: { type: 'string' }
  },
  required: ['statusCode', 'error', 'message']
} as const

export const userBody = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    iss: { type: 'string', description: 'The identity provider that vouches for a single sign-on user' },
    sub: { type: 'string', description: 'The user\'s subject at that provider' }
  },
  required: ['name']
} as const

/** Any JSON value: the client's own state. */
export const anyJson = { description: 'Any JSON value' } as const

export const STATE_MAX_BYTES = 4096
// 30 levels of state are 31 in the session: a JSON `data` column refuses 32 (MariaDB's json_valid).
export const STATE_MAX_DEPTH = 30

/** Errors every session route can answer. */
export const sessionRouteErrors = {
  403: errorBody,
  503: errorBody
} as const
