import { randomBytes } from 'node:crypto'
import type { RowDataPacket } from 'mysql2/promise'
import { pino } from 'pino'
import t, { type Test } from 'tap'
import { loggerOptions } from '../src/logger.js'
import { scrubDatabaseError } from '../src/session/store-errors.js'
import { Client, baseEnv, build, createTestDatabase, httpRequest, listen, privateDatabase, type HttpResponse } from './helper.js'
import { createTestUser } from './support/database-users.js'
import { captureLog } from './support/log-capture.js'
import { MARIADBD } from './support/private-mariadb.js'
import { sessionIdOf, signedCookie } from './support/signed-cookie.js'

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

t.test('the log of a whole scenario holds no session id, cookie, password or SQL', { skip: MARIADBD ? false : 'mariadbd is not installed' }, async (t) => {
  const db = await privateDatabase(t)
  const password = `pw-${randomBytes(12).toString('base64url')}`
  const wrongPassword = `wrong-${randomBytes(12).toString('base64url')}`
  await db.admin.query('CREATE USER app IDENTIFIED BY ?', [password])
  await db.admin.query('GRANT ALL ON sessions.* TO app')
  const log = captureLog()
  const env = { ...db.env, SESSION_USER: 'app', SESSION_PASSWORD: password, LOG_LEVEL: 'debug', SESSION_CLEANUP_INTERVAL: '200' }
  const base = await listen(await build(t, env, { logger: log.logger }))
  const waitForLog = async (pattern: RegExp) => {
    for (let tries = 0; tries < 50 && !pattern.test(log.text()); tries++) await sleep(100)
  }

  // A visitor, who comes back with the cookie and, for good measure, the password in a header.
  const client = new Client(base)
  await client.request('/session')
  const authorization = `Basic ${Buffer.from(`app:${password}`).toString('base64')}`
  await client.request('/session', { headers: { authorization } })
  // A forged cookie, and a corrupted row asked for with a valid one.
  const forged = `sid=${encodeURIComponent(`s:${randomBytes(24).toString('base64url')}.forged`)}`
  await httpRequest(`${base}/session`, { headers: { cookie: forged } })
  const corruptedId = randomBytes(24).toString('base64url')
  await db.admin.query('INSERT INTO sessions (session_id, expires, data) VALUES (?, ?, ?)', [corruptedId, Math.floor(Date.now() / 1000) + 3600, '{'])
  await httpRequest(`${base}/session`, { headers: { cookie: signedCookie(corruptedId, baseEnv.SESSION_SECRET as string) } })
  // Database errors that carry SQL text: the table gone under a request and under the cleanup timer.
  await db.admin.query('RENAME TABLE sessions TO sessions_away')
  t.equal((await client.request('/session')).status, 503)
  await waitForLog(/expired-session cleanup failed/)
  await db.admin.query('RENAME TABLE sessions_away TO sessions')
  // The database killed, then back.
  await db.server.stop('SIGKILL')
  t.equal((await client.request('/session')).status, 503)
  await db.server.start()
  t.equal((await client.request('/session')).status, 200)
  // An instance configured with a wrong password: it does not start, and says why in one line.
  const refused = await build(t, { ...env, SESSION_PASSWORD: wrongPassword }, { logger: log.logger }).then(() => '', (error: Error) => error.message)
  t.match(refused, /refused the login of SESSION_USER app .*Access denied/, 'a wrong password stops start-up')
  t.notOk(refused.includes(wrongPassword) || refused.includes(password), 'and its line holds no password')

  const text = log.text()
  for (const expected of [/request completed/, /the client gets a fresh session/, /"msg":"request failed"/, /expired-session cleanup failed/]) {
    t.match(text, expected, `the scenario logged ${expected}`)
  }
  const secrets: Array<[string, string]> = [
    ['the session id', sessionIdOf(client.cookie) as string],
    ['the session cookie', decodeURIComponent(client.cookie as string)],
    ['the session cookie, encoded', client.cookie as string],
    ['the forged cookie', forged],
    ['the corrupted row\'s id', corruptedId],
    ['the database password', password],
    ['the wrong database password', wrongPassword],
    ['the Authorization header', authorization.slice('Basic '.length)],
    ['the session secret', baseEnv.SESSION_SECRET as string]
  ]
  for (const [label, secret] of secrets) t.notOk(text.includes(secret), `no ${label} in ${text.length} characters of log`)
  t.notMatch(text, /SELECT |INSERT INTO|UPDATE `|DELETE FROM/, 'no SQL text')
  t.notMatch(text, /"sql"|"sqlMessage"/, 'database errors scrubbed before logging, not only censored')
  const failures = log.entries().filter((entry) => entry.msg === 'request failed').map((entry) => JSON.stringify(entry.err))
  t.match(failures, [/doesn't exist/, /ECONNREFUSED|PROTOCOL_CONNECTION_LOST/], 'each 503 logs why the store failed')
})

t.test('the redact paths catch headers, Set-Cookie, passwords and err.sql wherever a log line carries them', async (t) => {
  const lines: string[] = []
  const logger = pino(loggerOptions(), { write: (line: string) => { lines.push(line) } })
  logger.info({
    req: { headers: { cookie: 'sid=secret-cookie', authorization: 'Bearer secret-token' } },
    res: { headers: { 'set-cookie': 'sid=secret-set-cookie' } },
    database: { password: 'secret-password' },
    err: { message: 'boom', sql: 'SELECT secret_sql' }
  }, 'everything at once')
  t.notMatch(lines.join(''), /secret/)
  t.match(JSON.parse(lines.join('')), { req: { headers: { cookie: '[redacted]', authorization: '[redacted]' } }, err: { message: 'boom', sql: '[redacted]' } })
})

/** What every 503 says, whatever failed: no table, user, host, database or session id. */
const GENERIC_503 = { statusCode: 503, error: 'Service Unavailable', message: 'The session store is unavailable; retry later' }

function checkGeneric503 (t: Test, res: HttpResponse, names: string[]): void {
  t.equal(res.status, 503)
  t.same(res.json(), GENERIC_503, 'the answer is the generic 503')
  for (const name of names) t.notOk(res.body.includes(name), `its body does not name ${name}`)
}

t.test('a logged 503 shows where the store failed and which table is missing, not where its error was scrubbed', async (t) => {
  const db = await createTestDatabase(t)
  const log = captureLog()
  const client = new Client(await listen(await build(t, { ...db.env, LOG_LEVEL: 'warn' }, { logger: log.logger })))
  await client.request('/session')
  await db.pool.query('RENAME TABLE sessions TO sessions_away')
  checkGeneric503(t, await client.request('/session'), [db.name, 'sessions'])

  const failure = log.entries().find((entry) => entry.msg === 'request failed')
  const stack = String((failure?.err as { stack?: unknown } | undefined)?.stack)
  t.notMatch(stack, /scrubDatabaseError/, 'no frame of the scrubber')
  t.match(stack, /^StoreUnavailableError: session store unavailable \(read\)\n(\s+at .*\n)*\s+at async MysqlSessionStore\.read \(.*mysql-store\.ts/, 'raised in the store\'s read')
  t.match(stack, new RegExp(`\\ncaused by: Error: Table '${db.name}\\.sessions' doesn't exist\\n\\s+at .*node_modules/mysql2/`), 'caused in mysql2, naming the database and the table')
  t.match(failure, { err: { message: `session store unavailable (read): Table '${db.name}.sessions' doesn't exist` } }, 'the message names them too')
  t.notOk(log.text().includes(sessionIdOf(client.cookie) as string), 'no session id in the log')
})

t.test('a password changed or a grant revoked after start: the logged 503 names the user, host and database, the answer none of them', async (t) => {
  const db = await createTestDatabase(t)
  const user = await createTestUser(t, `GRANT ALL ON \`${db.name}\`.* TO %ACCOUNT%`)
  const log = captureLog()
  const client = new Client(await listen(await build(t, { ...db.env, SESSION_USER: user.name, SESSION_PASSWORD: user.password, LOG_LEVEL: 'warn' }, { logger: log.logger })))
  t.equal((await client.request('/session')).status, 200)
  // The pool keeps its connections through a change of password or grant: cut them, as a
  // restart or an idle timeout would, so the next ones log in again.
  const cutConnections = async () => {
    const [connections] = await db.pool.query<RowDataPacket[]>('SELECT id FROM information_schema.processlist WHERE user = ?', [user.name])
    for (const { id } of connections) await db.pool.query('KILL ?', [id]).catch(() => { /* gone already */ })
    await sleep(200)
  }
  /** The first 503 logged after `from` lines whose message matches `pattern` (a request or two may meet a cut connection first). */
  const failureMatching = async (from: number, pattern: RegExp) => {
    for (let tries = 0; tries < 5; tries++) {
      checkGeneric503(t, await client.request('/session'), [db.name, user.name, '127.0.0.1', 'localhost'])
      const failure = log.entries(from).find((entry) => entry.msg === 'request failed' && pattern.test(String((entry.err as { message?: unknown }).message)))
      if (failure) return failure
    }
    return undefined
  }

  const newPassword = `pw-new-${randomBytes(12).toString('base64url')}`
  let from = log.entries().length
  await db.pool.query(`ALTER USER ${user.account} IDENTIFIED BY '${newPassword}'`)
  await cutConnections()
  const denied = await failureMatching(from, /Access denied/)
  t.match((denied?.err as { message?: unknown } | undefined)?.message, new RegExp(`^session store unavailable \\(read\\): Access denied for user '${user.name}'@'[^'…]+' \\(using password: YES\\)$`), 'a changed password (1045): names the user and the host it logs in from')
  t.match((denied?.err as { stack?: unknown } | undefined)?.stack, new RegExp(`\\ncaused by: Error: Access denied for user '${user.name}'@`), 'in the stack as well')

  await db.pool.query(`ALTER USER ${user.account} IDENTIFIED BY '${user.password}'`)
  t.equal((await client.request('/session')).status, 200, 'the old password back, the store answers')

  from = log.entries().length
  await db.pool.query(`REVOKE ALL ON \`${db.name}\`.* FROM ${user.account}`)
  await cutConnections()
  const revoked = await failureMatching(from, /Access denied/)
  t.match((revoked?.err as { message?: unknown } | undefined)?.message, new RegExp(`^session store unavailable \\(read\\): Access denied for user '${user.name}'@'%' to database '${db.name}'$`), 'a revoked grant (1044): names the user, the account\'s host and the database')

  const text = log.text()
  for (const secret of [user.password, newPassword, sessionIdOf(client.cookie) as string]) t.notOk(text.includes(secret), 'no password or session id in the log')
  t.notMatch(text, /"sql"|"sqlMessage"/, 'no SQL text')
})

t.test('an error that quotes a value keeps it out of the log: a duplicate entry or a wrong value is the session id', async (t) => {
  const db = await createTestDatabase(t)
  const log = captureLog()
  const client = new Client(await listen(await build(t, { ...db.env, LOG_LEVEL: 'warn' }, { logger: log.logger })))
  t.equal((await client.request('/session/state', { method: 'PUT', body: { step: 1 } })).status, 200)
  const sessionId = sessionIdOf(client.cookie) as string

  // Triggers turn the store's own write of this session into a real error that quotes its id.
  await db.pool.query('CREATE TABLE seen (id VARCHAR(255) PRIMARY KEY, n INT)')
  const failWritesWith = async (statement: string) => {
    await db.pool.query('DROP TRIGGER IF EXISTS fail_insert')
    await db.pool.query('DROP TRIGGER IF EXISTS fail_update')
    await db.pool.query(`CREATE TRIGGER fail_insert BEFORE INSERT ON sessions FOR EACH ROW ${statement}`)
    await db.pool.query(`CREATE TRIGGER fail_update BEFORE UPDATE ON sessions FOR EACH ROW ${statement}`)
  }
  const failedWrite = async (step: number) => {
    const from = log.entries().length
    checkGeneric503(t, await client.request('/session/state', { method: 'PUT', body: { step } }), [sessionId, db.name])
    return log.entries(from).find((entry) => entry.msg === 'request failed')?.err as { message?: string, stack?: string } | undefined
  }

  await failWritesWith('INSERT INTO seen (id) VALUES (NEW.session_id), (NEW.session_id)')
  const duplicate = await failedWrite(2)
  t.match(duplicate?.message, /^session store unavailable \(update\): Duplicate entry '…' for key '…'$/, 'a duplicate entry (1062), logged with its value, the session id, scrubbed')

  await failWritesWith('INSERT INTO seen (id, n) VALUES (\'row\', NEW.session_id)')
  const wrongValue = await failedWrite(3)
  // 1366 for an id that starts with a letter, 1265 (Data truncated) for one that starts with a digit.
  t.match(wrongValue?.message, /^session store unavailable \(update\): (?:Incorrect integer value: '…' for column `[^`]+`\.`seen`\.`n`|Data truncated for column '…') at row 1$/, 'a value the column does not take (1366 or 1265), logged with the value scrubbed')

  t.notOk(log.text().includes(sessionId), 'the session id appears nowhere in the log')
  t.notMatch(log.text(), /"sql"|"sqlMessage"|INSERT INTO/, 'nor the statement')
})

t.test('scrubbing keeps a database error\'s frames and codes and drops the SQL text from every line', async (t) => {
  const db = await createTestDatabase(t)
  // A real syntax error: MariaDB quotes the statement, its own quotes included.
  const error = await db.pool.query("SELEC 'secret-value',\n 'another-secret' FROM somewhere").then(() => undefined, (error: unknown) => error as Error)
  t.ok(error instanceof Error)
  const scrubbed = scrubDatabaseError(new Error('the session store failed', { cause: error })) as Error & { cause: Error & Record<string, unknown> }
  const text = `${scrubbed.stack}\n${scrubbed.cause.message}\n${scrubbed.cause.stack}`
  for (const secret of ['secret-value', 'another-secret', 'SELEC', 'somewhere']) t.notOk(text.includes(secret), `no ${secret}`)
  t.match(scrubbed.cause.message, /^You have an error in your SQL syntax; .* near '…' at line 1$/)
  t.match(scrubbed.cause, { name: 'Error', code: 'ER_PARSE_ERROR', errno: 1064, sqlState: '42000' })
  t.match(scrubbed.cause.stack, /^Error: You have an error in your SQL syntax; .* near '…' at line 1\n\s+at .*log-redaction\.test\.ts/, 'the frames of the query, under the scrubbed message')
  t.match(scrubbed.stack, /^Error: the session store failed\n\s+at .*log-redaction\.test\.ts/)
})
