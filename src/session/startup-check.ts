import { connect } from 'node:net'
import { createConnection, type RowDataPacket } from 'mysql2/promise'
import { ConfigError, databaseEndpoints, endpointName, type Config, type DatabaseEndpoint } from '../config/config.js'
import { connectionSettings } from './mysql-pool.js'
import { REQUIRED_PRIVILEGES, SessionTableError } from './table.js'

/**
 * What start-up makes of a session database that failed its first ping: a configuration error
 * that stops the process (a wrong password, an unknown database, a missing grant, a port where no
 * MySQL server listens), or an outage that it rides out (503 until the database answers).
 *
 * The rule, with one server or several (SESSION_HOST=a,b,c, a Galera cluster): the error is
 * permanent only when a server answered with it and no server let the store in. Galera replicates
 * users, grants and databases, so what one node refuses the others refuse as well; a node that is
 * down, slow, too busy or shutting down says nothing about the configuration, and while any node
 * lets the store in, the pool serves from that one.
 */

/** How long each server gets to answer the diagnosis (to log in, or to send its greeting). */
export const PROBE_MS = 1500
// After PROBE_MS of silence, an HTTP request, and how long its answer may take.
const HTTP_PROBE = 'GET / HTTP/1.0\r\n\r\n'
const HTTP_PROBE_MS = 500

/** A start-up failure that is the configuration's: the process stops with this one line. */
export class DatabaseConfigError extends ConfigError {
  override name = 'DatabaseConfigError'
}

// Errors by which a server refuses the login itself, whatever is asked after it.
const LOGIN_REFUSED = new Set([
  1045, // ER_ACCESS_DENIED_ERROR: wrong password, or no such user for this client's address
  1698, // ER_ACCESS_DENIED_NO_PASSWORD_ERROR: the account authenticates otherwise (unix_socket)
  1130, // ER_HOST_NOT_PRIVILEGED: no account for this client's address at all
  1251, // ER_NOT_SUPPORTED_AUTH_MODE: an authentication plugin the client does not speak
  1820, // ER_MUST_CHANGE_PASSWORD: the password must be reset before any statement
  1862, // ER_MUST_CHANGE_PASSWORD_LOGIN: the password has expired
  3159, // MySQL ER_SECURE_TRANSPORT_REQUIRED: the server takes TLS connections only
  3118, // MySQL ER_ACCOUNT_HAS_BEEN_LOCKED
  4151 // MariaDB ER_ACCOUNT_HAS_BEEN_LOCKED
])
const ER_BAD_DB_ERROR = 1049
// The user is in, but may not use the database or a table (the store's statements, table.ts).
const NO_PRIVILEGE = new Set([
  1044, // ER_DBACCESS_DENIED_ERROR: no privilege at all on the database (or it does not exist)
  1142, // ER_TABLEACCESS_DENIED_ERROR: "DELETE command denied … for table …"
  1143, // ER_COLUMNACCESS_DENIED_ERROR
  1227 // ER_SPECIFIC_ACCESS_DENIED_ERROR
])

/** Errors of the connection itself: nothing listens there, or no route to it. */
const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'EADDRNOTAVAIL'])

interface ServerError { errno: number, code?: string, message: string }

/** What one server did when asked by the diagnosis. */
type EndpointState =
  | { kind: 'answers', account: string }
  | { kind: 'refused', error: ServerError, account?: string }
  | { kind: 'busy', error: ServerError }
  | { kind: 'unreachable', reason: string }
  | { kind: 'silent' }
  | { kind: 'greeted' }
  | { kind: 'closed' }
  | { kind: 'not-mysql', sample: string, askedHttp?: boolean }

export interface StartupDiagnosis {
  /** The process must stop: a configuration error, not an outage. */
  permanent: boolean
  /** One line: the stderr line when permanent, else the warning's message. */
  message: string
}

/**
 * Diagnoses the first ping's failure, `pingError`, by asking each server of SESSION_HOST in turn
 * (a login of its own; when that goes nowhere, a raw socket that reads the greeting).
 */
export async function diagnoseStartup (pingError: unknown, config: Config): Promise<StartupDiagnosis> {
  const endpoints = databaseEndpoints(config)
  const states = await Promise.all(endpoints.map((endpoint) => probeEndpoint(endpoint, config)))
  const answering = states.findIndex((state) => state.kind === 'answers')
  const permanent = (message: string) => ({ permanent: true, message: oneLine(message) })
  const transient = (message: string) => ({ permanent: false, message: oneLine(message) })

  if (answering === -1) {
    const index = states.findIndex((state) => state.kind === 'refused' || state.kind === 'not-mysql')
    if (index !== -1) return permanent(permanentMessage(endpoints[index] as DatabaseEndpoint, states[index] as EndpointState, config))
    const reasons = states.map((state, index) => `${endpointName(endpoints[index] as DatabaseEndpoint)}${transientReason(state, endpoints[index] as DatabaseEndpoint, config)}`)
    return transient(`the session database does not answer (${reasons.join('; ')}); session routes answer 503 until it does`)
  }

  // The store logs in, so what failed was its first use: a statement of the table's creation or
  // of the privilege check refused (the grant is missing), else something the next request may
  // not meet again (a lock that outlasted the deadline, a table it cannot use).
  const endpoint = endpoints[answering] as DatabaseEndpoint
  const tableError = causeNamed(pingError, SessionTableError.name)
  if (tableError) return permanent(`${tableError.message} (SESSION_DATABASE ${config.SESSION_DATABASE as string} at ${endpointName(endpoint)})`)
  const serverError = serverErrorOf(pingError)
  if (serverError && NO_PRIVILEGE.has(serverError.errno)) {
    return permanent(noPrivilege(endpoint, config, serverError, (states[answering] as { account: string }).account))
  }
  return transient(`the session database at ${endpointName(endpoint)} answers, but the store's first use of it failed (${describeError(pingError)}); session routes answer 503 until it succeeds`)
}

/** The error of that class here or in a cause, known by its name: the store scrubs errors into copies (store-errors.ts). */
function causeNamed (error: unknown, name: string): Error | undefined {
  for (let cause = error; cause instanceof Error; cause = cause.cause) if (cause.name === name) return cause
  return undefined
}

/** The server's own error (an ERR packet: a positive errno), here or in a cause; not a socket's (negative errno). */
function serverErrorOf (error: unknown): ServerError | undefined {
  for (let cause = error; cause instanceof Error; cause = cause.cause) {
    const { errno, code } = cause as Error & { errno?: unknown, code?: string }
    if (typeof errno === 'number' && errno > 0) return { errno, code, message: cause.message }
  }
  return undefined
}

function isPermanent ({ errno }: ServerError): boolean {
  return LOGIN_REFUSED.has(errno) || errno === ER_BAD_DB_ERROR || NO_PRIVILEGE.has(errno)
}

async function probeEndpoint (endpoint: DatabaseEndpoint, config: Config, probeMs = PROBE_MS): Promise<EndpointState> {
  try {
    return { kind: 'answers', account: await currentAccount(endpoint, config, probeMs, true) }
  } catch (error) {
    const serverError = serverErrorOf(error)
    if (serverError) {
      if (!isPermanent(serverError)) return { kind: 'busy', error: serverError }
      // Refused the database, not the login: who the server takes this user for, for the GRANT.
      const account = LOGIN_REFUSED.has(serverError.errno)
        ? undefined
        : await currentAccount(endpoint, config, probeMs, false).catch(() => undefined)
      return { kind: 'refused', error: serverError, account }
    }
    const code = (error as { code?: string }).code
    if (code !== undefined && UNREACHABLE.has(code)) return { kind: 'unreachable', reason: code }
    // The server asked for an authentication method mysql2 does not speak (MariaDB's ed25519, PAM,
    // GSSAPI): no retry logs this account in.
    if (code === 'AUTH_SWITCH_PLUGIN_ERROR') return { kind: 'refused', error: { errno: 0, code, message: (error as Error).message } }
    // Connected (or timed out) without a login: read what the server says first, if anything.
    return await readGreeting(endpoint, probeMs)
  }
}

/** Logs in (with SESSION_DATABASE, or without), and returns CURRENT_USER() as `'user'@'host'`. */
async function currentAccount (endpoint: DatabaseEndpoint, config: Config, probeMs: number, withDatabase: boolean): Promise<string> {
  const connection = await createConnection({
    ...connectionSettings(endpoint, config),
    database: withDatabase ? config.SESSION_DATABASE : undefined,
    connectTimeout: probeMs
  })
  try {
    const [rows] = await connection.query<RowDataPacket[]>({ sql: 'SELECT CURRENT_USER() AS account', timeout: probeMs })
    const account = String(rows[0]?.account)
    const at = account.lastIndexOf('@')
    return at === -1 ? quotedAccount(account, '%') : quotedAccount(account.slice(0, at), account.slice(at + 1))
  } finally {
    connection.destroy()
  }
}

/** Server messages are single lines in practice; the contract promises one. */
function oneLine (text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, ' ')
}

function quotedAccount (user: string, host: string): string {
  return `'${user.replaceAll("'", "''")}'@'${host.replaceAll("'", "''")}'`
}

/**
 * Reads the first bytes a server sends on a raw socket. A MySQL/MariaDB server speaks first: a
 * packet (3-byte length, sequence 0) holding a protocol-10 handshake (0x0a) or an error (0xff).
 * Anything else (an SSH banner, an HTTP answer) is another program; silence is a server that waits
 * for the client to speak (HTTP), or a proxy that has no backend to connect to yet.
 */
function readGreeting (endpoint: DatabaseEndpoint, probeMs: number): Promise<EndpointState> {
  return new Promise((resolve) => {
    const socket = connect({ host: endpoint.host, port: endpoint.port })
    let connected = false
    let askedHttp = false
    let received = Buffer.alloc(0)
    const finish = (state: EndpointState) => {
      clearTimeout(timer)
      socket.destroy()
      resolve(state)
    }
    const judge = () => {
      const greeting = received.length >= 5 && received[3] === 0 && (received[4] === 0x0a || received[4] === 0xff)
      finish(greeting ? { kind: 'greeted' } : { kind: 'not-mysql', sample: sampleOf(received), askedHttp })
    }
    const silence = () => {
      if (received.length > 0) return judge()
      if (!connected) return finish({ kind: 'unreachable', reason: 'ETIMEDOUT' })
      if (askedHttp) return finish({ kind: 'silent' })
      // A MySQL server speaks first; one silent this long is stuck, or not MySQL. A web server
      // (the app's own port, a dashboard) speaks only when asked: ask it, once, as HTTP does.
      askedHttp = true
      socket.write(HTTP_PROBE)
      timer = setTimeout(silence, HTTP_PROBE_MS)
    }
    let timer = setTimeout(silence, probeMs)
    socket.on('connect', () => { connected = true })
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk])
      if (received.length >= 5) judge()
    })
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (received.length > 0) judge()
      else finish(connected ? { kind: 'closed' } : { kind: 'unreachable', reason: error.code ?? error.message })
    })
    socket.on('end', () => {
      if (received.length > 0) judge()
      else finish({ kind: 'closed' })
    })
  })
}

/** The first bytes, as a quoted one-line string (control characters escaped). */
function sampleOf (bytes: Buffer): string {
  const text = bytes.subarray(0, 64).toString('latin1')
  return JSON.stringify(bytes.length > 64 ? `${text}…` : text)
}

function portVariable (endpoint: DatabaseEndpoint, config: Config): string {
  return endpoint.port === config.SESSION_PORT ? 'SESSION_PORT' : `the port in SESSION_HOST (${endpointName(endpoint)})`
}

function grant (config: Config, account: string | undefined): string {
  return `GRANT ${REQUIRED_PRIVILEGES} ON \`${config.SESSION_DATABASE as string}\`.* TO ${account ?? quotedAccount(config.SESSION_USER as string, '%')}`
}

/** The server's message without "to user 'x'@'y'", which the GRANT names (and may be scrubbed to '…'). */
function withoutUser (message: string): string {
  return message.replace(/ (?:to|for) user '[^']*'@'[^']*'/, '')
}

function noPrivilege (endpoint: DatabaseEndpoint, config: Config, error: ServerError, account: string | undefined): string {
  const create = error.errno === 1044 ? ` (and CREATE DATABASE \`${config.SESSION_DATABASE as string}\` if it does not exist)` : ''
  return `SESSION_USER ${config.SESSION_USER as string} lacks privileges on SESSION_DATABASE ${config.SESSION_DATABASE as string} at ${endpointName(endpoint)} (${withoutUser(error.message)}): as an administrator, run ${grant(config, account)}${create}`
}

function permanentMessage (endpoint: DatabaseEndpoint, state: EndpointState, config: Config): string {
  const where = endpointName(endpoint)
  const user = config.SESSION_USER as string
  const database = config.SESSION_DATABASE as string
  if (state.kind === 'not-mysql') {
    const what = state.askedHttp ? `is a web server, not a MySQL/MariaDB server (asked over HTTP, it answered ${state.sample})` : `answered but is not a MySQL/MariaDB server (it sent ${state.sample})`
    return `${where} ${what}: ${portVariable(endpoint, config)} must be the database's port`
  }
  if (state.kind !== 'refused') throw new Error(`not a permanent state: ${state.kind}`)
  const { error, account } = state
  if (error.errno === ER_BAD_DB_ERROR) {
    return `the database server at ${where} has no database ${database} (SESSION_DATABASE; SESSION_USER ${user}): create it (CREATE DATABASE \`${database}\`; ${grant(config, account)}) or correct SESSION_DATABASE`
  }
  if (NO_PRIVILEGE.has(error.errno)) return noPrivilege(endpoint, config, error, account)
  return `the database server at ${where} refused the login of SESSION_USER ${user} (SESSION_DATABASE ${database}): ${error.message}; check SESSION_USER and SESSION_PASSWORD, and that this user exists on the server for this client's address`
}

function transientReason (state: EndpointState, endpoint: DatabaseEndpoint, config: Config): string {
  switch (state.kind) {
    case 'unreachable': return `: ${state.reason}`
    case 'silent': return ` accepted the connection but sent no MySQL greeting within ${PROBE_MS / 1000} s: is ${portVariable(endpoint, config)} the database's port?`
    case 'greeted': return ` sent a MySQL greeting but did not complete a login within ${PROBE_MS / 1000} s`
    case 'closed': return ' accepted the connection and closed it without a MySQL greeting'
    case 'busy': return `: ${state.error.code ?? state.error.errno} ${state.error.message}`
    default: return `: ${state.kind}`
  }
}

function describeError (error: unknown): string {
  const server = serverErrorOf(error)
  if (server) return `${server.code ?? server.errno}: ${server.message}`
  for (let cause = error; cause instanceof Error; cause = cause.cause) {
    const code = (cause as { code?: unknown }).code
    if (typeof code === 'string') return code
    if (!(cause.cause instanceof Error)) return cause.message
  }
  return String(error)
}
