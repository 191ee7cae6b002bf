/**
 * An error a route raises on purpose: its message is meant for the client and is shown even for a
 * 5xx (unlike unexpected errors, whose message the error handler hides). `error` replaces the
 * status text in the JSON body where the contract names one (login's "invalid credentials").
 */
export class HttpError extends Error {
  constructor (
    readonly statusCode: number,
    message: string,
    readonly options: { error?: string, headers?: Record<string, string> } = {}
  ) {
    super(message)
  }
}
