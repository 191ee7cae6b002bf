/**
 * An error a route raises on purpose: its message is meant for the client and is shown even for a
 * 5xx (unlike unexpected errors, whose message the error handler hides). `error` replaces the
 * status text in the JSON body where the contract names one (login's "invalid credentials").
 * `statusCode` and `headers` are the properties Fastify's default error handler applies, so an app
 * of its own that registers the session plugin without our error handler answers them too.
 */
export class HttpError extends Error {
  readonly headers: Record<string, string> | undefined
  readonly error: string | undefined

  constructor (
    readonly statusCode: number,
    message: string,
    options: { error?: string, headers?: Record<string, string> } = {}
  ) {
    super(message)
    this.headers = options.headers
    this.error = options.error
  }
}
