// `npm run sessions -- <command>`: the sessions in the database the server uses, read with the
// server's own configuration (environment and .env, through loadConfig) and its own store code.
import { parseArgs } from 'node:util'
import { pino } from 'pino'
import { ConfigError, databaseEndpoints, loadConfig, usesDatabase } from '../config/config.js'
import { createMysqlStore } from '../session/mysql-store.js'
import type { SessionUser } from '../session/session-data.js'
import { StoreUnavailableError } from '../session/store-errors.js'
import { summarizeSessions } from '../session/summaries.js'

const USAGE = `usage: npm run sessions -- <command>
  count              how many sessions have not expired (the number alone on the last line)
  prune              delete the expired sessions, in batches, and say how many went
  revoke-user NAME   end every session of a user, and say how many ended
  list-user NAME     one JSON line per session of a user: handle, createdAt, lastSeenAt, userAgent, device, ip
options for revoke-user and list-user:
  --issuer URL       a user of that identity provider (OIDC_ISSUER); without it, a local (htpasswd) user
  --subject SUB      with --issuer: the provider's subject, when it is not NAME`

// An operator may wait longer than a request's 1.2 s for a large user; connecting stays bounded
// by the pool's own 1 s connect timeout, so an unreachable database still fails at once.
const CLI_DEADLINE_MS = 10000

class UsageError extends Error {}

/** host:port of the database, for the error line, once the configuration is read. */
let database = ''

function parseCommand (): { command: string, user?: SessionUser } {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    args: process.argv.slice(2),
    options: { issuer: { type: 'string' }, subject: { type: 'string' } }
  })
  const [command, name, ...rest] = positionals
  if (rest.length > 0 || (values.subject !== undefined && values.issuer === undefined)) throw new UsageError()
  if ((command === 'count' || command === 'prune') && name === undefined && values.issuer === undefined) return { command }
  if ((command === 'revoke-user' || command === 'list-user') && name) {
    // The same (issuer, subject) the store keys sessions by (identity.ts).
    return { command, user: values.issuer === undefined ? { name } : { name, iss: values.issuer, sub: values.subject ?? name } }
  }
  throw new UsageError()
}

async function main (): Promise<void> {
  const { command, user } = parseCommand()
  const { config } = loadConfig()
  if (!usesDatabase(config)) {
    throw new ConfigError('npm run sessions needs the database: set SESSION_HOST, SESSION_USER and SESSION_DATABASE as for the server (the in-memory store lives only inside a server process)')
  }
  database = databaseEndpoints(config).map(({ host, port }) => `${host}:${port}`).join(',')
  const { pool, store } = createMysqlStore(config, { deadlineMs: CLI_DEADLINE_MS, log: pino({ level: config.LOG_LEVEL }, pino.destination(2)), keysRows: false })
  const print = (line: string) => process.stdout.write(`${line}\n`)
  try {
    if (command === 'count') {
      print(String(await store.countLive()))
    } else if (command === 'prune') {
      // The server's cleanup, under the same lease: 0 also when an instance is cleaning right now.
      print(`${await store.cleanupExpired()} expired sessions removed`)
    } else if (command === 'revoke-user') {
      print(`${await store.endSessionsOf(user as SessionUser)} sessions of ${user?.name} ended`)
    } else {
      for (const { id, createdAt, lastSeenAt, userAgent, device, ip } of summarizeSessions(await store.sessionsOf(user as SessionUser), config)) {
        print(JSON.stringify({ handle: id, createdAt, lastSeenAt, userAgent, device, ip }))
      }
    }
  } finally {
    await store.close()
    await pool.end()
  }
}

/** One line, no stack: the database's address and the system's reason, never SQL. */
function describe (error: unknown): string {
  if (error instanceof StoreUnavailableError) {
    let cause: unknown = error
    while (cause instanceof Error && cause.cause !== undefined) cause = cause.cause
    const code = (cause as { code?: string } | undefined)?.code
    return `cannot reach the session database at ${database} (${code ?? error.message})`
  }
  return error instanceof Error ? error.message : String(error)
}

main().catch((error: unknown) => {
  if (error instanceof UsageError || (error as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    process.stderr.write(`${USAGE}\n`)
    process.exitCode = 2
    return
  }
  process.stderr.write(`${describe(error)}\n`)
  process.exitCode = 1
})
