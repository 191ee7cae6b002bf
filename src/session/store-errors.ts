/**
 * The session store did not answer in time or failed. Answered as 503 with Retry-After; the cause
 * stays in the server log (without SQL text) and never reaches the client.
 */
export class StoreUnavailableError extends Error {
  override name = 'StoreUnavailableError'
  readonly statusCode = 503
  readonly headers = { 'retry-after': '5' }

  constructor (operation: string, cause?: unknown) {
    super(`session store unavailable (${operation})`, { cause: scrubDatabaseError(cause) })
  }
}

// A Galera certification conflict (two nodes wrote one row at once) or an InnoDB deadlock: the
// transaction was rolled back and may be run again.
const ER_LOCK_DEADLOCK = 1213

/** The database rolled the statement back (a certification conflict or a deadlock): it did nothing. */
export function isConflict (error: unknown): boolean {
  return (error as { errno?: number } | undefined)?.errno === ER_LOCK_DEADLOCK
}

/** Tells work running under `withDeadline` whether its caller has stopped waiting. */
export interface Deadline {
  readonly passed: boolean
}

/**
 * Rejects with StoreUnavailableError after `ms`; the work itself is not cancelled, but no request
 * waits for it any longer (a pool queue can otherwise hold a request for as long as the database
 * stalls). `work` is told through `deadline.passed` when its caller has given up, so it can skip
 * what is left instead of doing it for nobody.
 */
export async function withDeadline<T> (operation: string, ms: number, work: (deadline: Deadline) => Promise<T>): Promise<T> {
  const deadline = { passed: false }
  let timer: NodeJS.Timeout | undefined
  const expired = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      deadline.passed = true
      reject(new StoreUnavailableError(`${operation} took longer than ${ms} ms`))
    }, ms)
  })
  try {
    return await Promise.race([work(deadline).catch((error: unknown) => {
      throw error instanceof StoreUnavailableError ? error : new StoreUnavailableError(operation, error)
    }), expired])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Server errors whose message quotes names only (users, hosts, databases, tables, columns, a
 * clause or a resource), never a value or a statement: host, user and database names are not
 * secrets, and the reader of the log needs them to see which account, database or table failed.
 * Known by their errno and mysql2's name for it together, so a system error (negative errno) or an
 * error of another origin that happens to carry one of these numbers keeps the whole scrubbing.
 * Every other error is scrubbed: a duplicate entry (1062) quotes the key, a session id; a syntax
 * error (1064) the statement; a data error (1265, 1366, 1406...) the value.
 */
const QUOTES_ONLY_NAMES = new Map<number, string>([
  [1044, 'ER_DBACCESS_DENIED_ERROR'], // Access denied for user 'u'@'h' to database 'db'
  [1045, 'ER_ACCESS_DENIED_ERROR'], // Access denied for user 'u'@'h' (using password: YES)
  [1049, 'ER_BAD_DB_ERROR'], // Unknown database 'db'
  [1054, 'ER_BAD_FIELD_ERROR'], // Unknown column 'c' in 'SELECT' (the statements' values are bound, never names)
  [1114, 'ER_RECORD_FILE_FULL'], // The table 't' is full
  [1129, 'ER_HOST_IS_BLOCKED'], // Host 'h' is blocked because of many connection errors; unblock with 'mariadb-admin flush-hosts'
  [1130, 'ER_HOST_NOT_PRIVILEGED'], // Host 'h' is not allowed to connect to this MariaDB server
  [1142, 'ER_TABLEACCESS_DENIED_ERROR'], // DELETE command denied to user 'u'@'h' for table `db`.`t`
  [1143, 'ER_COLUMNACCESS_DENIED_ERROR'], // SELECT command denied to user 'u'@'h' for column 'c' in table 't'
  [1146, 'ER_NO_SUCH_TABLE'], // Table 'db.t' doesn't exist
  [1203, 'ER_TOO_MANY_USER_CONNECTIONS'], // User u already has more than 'max_user_connections' active connections
  [1226, 'ER_USER_LIMIT_REACHED'], // User 'u' has exceeded the 'max_user_connections' resource (current value: 1)
  [1698, 'ER_ACCESS_DENIED_NO_PASSWORD_ERROR'] // Access denied for user 'u'@'h'
])

/**
 * mysql2 errors carry the SQL text and bound values; keep only what helps an operator, including
 * the scrubbed cause, so a logged 503 still says why the store failed, and the original's stack,
 * so it shows where. Quoted names stay in the message of the errors that quote nothing else
 * (QUOTES_ONLY_NAMES); every other message has its quoted parts replaced.
 */
export function scrubDatabaseError (error: unknown): unknown {
  if (!(error instanceof Error)) return error
  const { code, errno, sqlState } = error as Error & { code?: string, errno?: number, sqlState?: string }
  const cause = error.cause === undefined ? {} : { cause: scrubDatabaseError(error.cause) }
  const namesOnly = errno !== undefined && code !== undefined && QUOTES_ONLY_NAMES.get(errno) === code
  const scrubbed = new Error(namesOnly ? error.message : withoutSqlText(error.message), cause)
  scrubbed.name = error.name
  scrubbed.stack = namesOnly ? error.stack : stackWithoutSqlText(error)
  Object.assign(scrubbed, { code, errno, sqlState })
  return scrubbed
}

/** Quoted names and values, and the statement a syntax error quotes (its own quotes included). */
function withoutSqlText (text: string): string {
  return text.replace(/ near '[\s\S]*' at line (\d+)/g, " near '…' at line $1").replace(/'[^']*'/g, "'…'")
}

/**
 * The stack's first lines repeat the message (as it was when the stack was first read, so it is
 * looked for rather than assumed); they are scrubbed, the frames kept.
 */
function stackWithoutSqlText ({ stack, message }: Error): string | undefined {
  if (stack === undefined) return undefined
  const firstFrame = stack.search(/\n\s+at /)
  const repeated = message === '' ? -1 : stack.indexOf(message)
  const end = Math.max(firstFrame === -1 ? stack.length : firstFrame, repeated === -1 ? 0 : repeated + message.length)
  return withoutSqlText(stack.slice(0, end)) + stack.slice(end)
}
