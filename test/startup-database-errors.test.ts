import { randomBytes } from 'node:crypto'
import { createConnection, type RowDataPacket } from 'mysql2/promise'
import t, { type Test } from 'tap'
import { userKey } from '../src/session/identity.js'
import { Client, baseEnv, createTestDatabase, databaseUrl, httpRequest, inAnHour, privateDatabase, type Env } from './helper.js'
import { loginAs, writeUsersFile } from './support/accounts.js'
import { adminSettings, asAdmin, createTestUser } from './support/database-users.js'
import { freePort } from './support/private-mariadb.js'
import { runProcess, serverEntry, startServer, type Exit } from './support/server-process.js'
import { expressMysqlSessionTable } from './support/legacy-tables.js'

// The database refuses this configuration at start: the process stops with one line naming the
// server, the user and the database and what to do; a database that is only down does not stop it.

const where = `${databaseUrl.hostname}:${databaseUrl.port || 3306}`
const GRANT = 'SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER'

function env (database: string, user: string, password: string, extra: Env = {}): Env {
  return {
    ...baseEnv,
    LOG_LEVEL: 'info',
    HOST: '127.0.0.1',
    SESSION_HOST: databaseUrl.hostname,
    SESSION_PORT: databaseUrl.port || '3306',
    SESSION_USER: user,
    SESSION_PASSWORD: password,
    SESSION_DATABASE: database,
    ...extra
  }
}

/** Starts the server and expects it to exit before listening. */
async function refusedStart (t: Test, variables: Env): Promise<Exit> {
  // A server that listens after all is stopped at once: the test fails instead of waiting.
  const result = await runProcess([serverEntry], { ...variables, PORT: String(await freePort()) }, (stdout, child) => {
    if (stdout.includes('Server listening')) child.kill('SIGKILL')
  })
  t.equal(result.code, 1, 'exit 1')
  t.notMatch(result.stdout, /Server listening/, 'never listened')
  t.equal(result.stderr.split('\n').length, 2, `one line on stderr: ${result.stderr}`)
  t.notMatch(result.stderr, /\n\s+at /, 'no stack trace')
  return result
}

t.test('a wrong password and an unknown user: exit 1, one line naming server, user and database', async (t) => {
  const db = await createTestDatabase(t)
  const user = await createTestUser(t, `GRANT ${GRANT} ON \`${db.name}\`.* TO %ACCOUNT%`)
  const wrong = `wrong-${randomBytes(9).toString('base64url')}`
  const denied = await refusedStart(t, env(db.name, user.name, wrong))
  t.match(denied.stderr, new RegExp(`^the database server at ${where} refused the login of SESSION_USER ${user.name} \\(SESSION_DATABASE ${db.name}\\): Access denied for user '${user.name}'@'[^']+' \\(using password: YES\\); check SESSION_USER and SESSION_PASSWORD, and that this user exists on the server for this client's address\n$`))
  for (const secret of [wrong, user.password]) t.notOk(denied.stdout.includes(secret) || denied.stderr.includes(secret), 'no password in any output')

  const nobody = `nobody_${randomBytes(4).toString('hex')}`
  const unknown = await refusedStart(t, env(db.name, nobody, user.password))
  t.match(unknown.stderr, new RegExp(`^the database server at ${where} refused the login of SESSION_USER ${nobody} \\(SESSION_DATABASE ${db.name}\\): Access denied for user '${nobody}'@`))
})

t.test('an unknown database: exit 1, naming it, with the statements that create it', async (t) => {
  const missing = `t_missing_${randomBytes(4).toString('hex')}`
  // Privileges on a database that does not exist (yet): the server says it is unknown (1049).
  const user = await createTestUser(t, `GRANT ${GRANT} ON \`${missing}\`.* TO %ACCOUNT%`)
  const result = await refusedStart(t, env(missing, user.name, user.password))
  t.equal(result.stderr, `the database server at ${where} has no database ${missing} (SESSION_DATABASE; SESSION_USER ${user.name}): create it (CREATE DATABASE \`${missing}\`; GRANT ${GRANT} ON \`${missing}\`.* TO ${user.account}) or correct SESSION_DATABASE\n`)
})

t.test('no privilege on the database, or not enough on the table: exit 1 with the GRANT the store needs', async (t) => {
  const db = await createTestDatabase(t)
  const none = await createTestUser(t)
  const noDatabase = await refusedStart(t, env(db.name, none.name, none.password))
  t.equal(noDatabase.stderr, `SESSION_USER ${none.name} lacks privileges on SESSION_DATABASE ${db.name} at ${where} (Access denied to database '${db.name}'): as an administrator, run GRANT ${GRANT} ON \`${db.name}\`.* TO ${none.account} (and CREATE DATABASE \`${db.name}\` if it does not exist)\n`)

  // May connect and read, but not create the session table.
  const reader = await createTestUser(t, `GRANT SELECT ON \`${db.name}\`.* TO %ACCOUNT%`)
  const noCreate = await refusedStart(t, env(db.name, reader.name, reader.password))
  t.equal(noCreate.stderr, `SESSION_USER ${reader.name} lacks privileges on SESSION_DATABASE ${db.name} at ${where} (CREATE command denied for table \`${db.name}\`.\`sessions\`): as an administrator, run GRANT ${GRANT} ON \`${db.name}\`.* TO ${reader.account}\n`)
})

t.test('a grant without DELETE stops start-up; the GRANT the line prints lets it start', async (t) => {
  const db = await createTestDatabase(t)
  const user = await createTestUser(t, `GRANT SELECT, INSERT, UPDATE, CREATE, ALTER ON \`${db.name}\`.* TO %ACCOUNT%`)
  const variables = env(db.name, user.name, user.password)
  const refused = await refusedStart(t, variables)
  t.match(refused.stderr, /^SESSION_USER \S+ lacks privileges on SESSION_DATABASE \S+ at \S+ \(DELETE command denied for table `[^`]+`\.`sessions`\): as an administrator, run GRANT /)
  const grant = /run (GRANT .*)\n$/.exec(refused.stderr)?.[1] as string
  t.equal(grant, `GRANT ${GRANT} ON \`${db.name}\`.* TO ${user.account}`)

  await asAdmin(grant)
  const server = await startServer({ ...variables, PORT: String(await freePort()) })
  server.child.kill('SIGTERM')
  t.equal((await server.exited).code, 0, 'started with that grant, and stopped cleanly')
})

t.test('exactly the GRANT the store asks for runs everything: upgrade, sessions, login, logout, cleanup', async (t) => {
  const db = await createTestDatabase(t)
  // express-mysql-session's table: the start upgrades it (ALTER TABLE … ADD COLUMN, ADD INDEX).
  await db.pool.query(expressMysqlSessionTable())
  await db.pool.query('INSERT INTO sessions (session_id, expires, data) VALUES (?, ?, ?), (?, ?, ?)', [
    'expired-row', 1, JSON.stringify({ cookie: { path: '/', httpOnly: true, originalMaxAge: 1000 }, createdAt: 0 }),
    'live-row', inAnHour(), JSON.stringify({ cookie: { path: '/', httpOnly: true, originalMaxAge: 3600000, expires: new Date(inAnHour() * 1000).toISOString() }, createdAt: Date.now(), user: { name: 'bob' } })
  ])
  const user = await createTestUser(t, `GRANT ${GRANT} ON \`${db.name}\`.* TO %ACCOUNT%`)
  const usersFile = writeUsersFile(t, { ann: 'correct horse' })
  const port = await freePort()
  const server = await startServer(env(db.name, user.name, user.password, { PORT: String(port), AUTH_USERS_FILE: usersFile, SESSION_CLEANUP_INTERVAL: '300' }))
  t.teardown(() => { server.child.kill('SIGKILL') })

  const client = new Client(`http://127.0.0.1:${port}`)
  t.equal((await client.request('/session')).status, 200, 'a new session, inserted')
  t.equal((await loginAs(client, 'ann', 'correct horse')).status, 200, 'login: a new id, the old row deleted')
  t.equal((await client.request('/session')).json().user?.name, 'ann', 'read back')
  t.equal((await client.request('/session/all')).status, 200, 'the user\'s sessions, listed')
  t.equal((await client.request('/session/logout', { method: 'POST' })).status, 204, 'logout: the row deleted')
  t.equal((await httpRequest(`http://127.0.0.1:${port}/health/ready`)).status, 200)

  const [rows] = await db.pool.query<RowDataPacket[]>('SELECT session_id FROM sessions WHERE session_id = ?', ['expired-row'])
  for (let tries = 0; tries < 50 && rows.length > 0; tries++) {
    await new Promise((resolve) => setTimeout(resolve, 100))
    rows.splice(0, rows.length, ...(await db.pool.query<RowDataPacket[]>('SELECT session_id FROM sessions WHERE session_id = ?', ['expired-row']))[0])
  }
  t.same(rows, [], 'the cleanup deleted the expired row under its lease')
  const [columns] = await db.pool.query<RowDataPacket[]>("SELECT COLUMN_NAME AS name FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = 'sessions' AND COLUMN_NAME = 'user_key'")
  t.equal(columns.length, 1, 'the table was upgraded')
  const [keyed] = await db.pool.query<RowDataPacket[]>('SELECT user_key FROM sessions WHERE session_id = ?', ['live-row'])
  t.equal(keyed[0]?.user_key, userKey({ name: 'bob' }), 'the existing row was keyed by user')

  server.child.kill('SIGTERM')
  const exit = await server.exited
  t.equal(exit.code, 0)
  const warnings = exit.stdout.split('\n').filter(Boolean).map((line) => JSON.parse(line) as { level: number, msg: string, component?: string })
    .filter((entry) => entry.level >= 40 && entry.component === 'session-store')
  t.same(warnings, [], 'no warning from the store')
})

t.test('several hosts: one refused, one that denies the login: exit 1, naming the one that answered', async (t) => {
  const db = await createTestDatabase(t)
  const user = await createTestUser(t, `GRANT ${GRANT} ON \`${db.name}\`.* TO %ACCOUNT%`)
  const dead = await freePort()
  const result = await refusedStart(t, env(db.name, user.name, 'not-the-password', { SESSION_HOST: `127.0.0.1:${dead},${where}` }))
  t.match(result.stderr, new RegExp(`^the database server at ${where} refused the login of SESSION_USER ${user.name} \\(SESSION_DATABASE ${db.name}\\): Access denied`))
})

t.test('a database that is down at start is an outage, not a configuration error: it starts, 503, and says where', async (t) => {
  const port = await freePort()
  const dead = await freePort()
  const password = `pw-${randomBytes(9).toString('base64url')}`
  const server = await startServer(env('sessions', 'app', password, { PORT: String(port), SESSION_HOST: '127.0.0.1', SESSION_PORT: String(dead) }))
  t.equal((await httpRequest(`http://127.0.0.1:${port}/health/ready`)).status, 503)
  t.equal((await httpRequest(`http://127.0.0.1:${port}/session`)).status, 503)
  server.child.kill('SIGTERM')
  const exit = await server.exited
  t.equal(exit.code, 0)
  const warning = exit.stdout.split('\n').filter(Boolean).map((line) => JSON.parse(line) as { level: number, msg: string })
    .find((entry) => entry.level === 40 && entry.msg.startsWith('the session database'))
  t.equal(warning?.msg, `the session database does not answer (127.0.0.1:${dead}: ECONNREFUSED); session routes answer 503 until it does`)
  t.notOk(exit.stdout.includes(password) || exit.stderr.includes(password), 'no password in any output')
})

t.test('a server error that passes (the user\'s connection limit reached): it starts, 503, and serves once a connection is free', async (t) => {
  const db = await createTestDatabase(t)
  const user = await createTestUser(t, `GRANT ${GRANT} ON \`${db.name}\`.* TO %ACCOUNT%`, 'ALTER USER %ACCOUNT% WITH MAX_USER_CONNECTIONS 1')
  // The one connection the user may have, held by the test.
  const holder = await createConnection({ ...adminSettings(), user: user.name, password: user.password, database: db.name })
  const port = await freePort()
  const server = await startServer(env(db.name, user.name, user.password, { PORT: String(port) }))
  t.teardown(() => { server.child.kill('SIGKILL') })
  t.equal((await httpRequest(`http://127.0.0.1:${port}/health/ready`)).status, 503)
  t.equal((await httpRequest(`http://127.0.0.1:${port}/session`)).status, 503)
  await holder.end()
  // mysql2 resolves end() before the server has let the connection go: ask until it has.
  let ready = 0
  for (const deadline = Date.now() + 10_000; ready !== 200 && Date.now() < deadline;) {
    ready = (await httpRequest(`http://127.0.0.1:${port}/health/ready`)).status
    if (ready !== 200) await new Promise((resolve) => setTimeout(resolve, 100))
  }
  t.equal(ready, 200, 'ready once the connection is free, without a restart')
  t.equal((await httpRequest(`http://127.0.0.1:${port}/session`)).status, 200)
  server.child.kill('SIGTERM')
  const exit = await server.exited
  const warning = exit.stdout.split('\n').filter(Boolean).map((line) => JSON.parse(line) as { level: number, msg: string })
    .find((entry) => entry.level === 40 && entry.msg.startsWith('the session database'))
  t.match(warning?.msg, new RegExp(`^the session database does not answer \\(${where}: ER_USER_LIMIT_REACHED User '${user.name}' has exceeded the 'max_user_connections' resource \\(current value: 1\\)\\); session routes answer 503 until it does$`))
})

t.test('an account whose authentication method mysql2 does not speak (MariaDB\'s ed25519): exit 1, one line', async (t) => {
  // On a private server: the plugin is installed for this test only.
  const db = await privateDatabase(t)
  try {
    await db.admin.query("INSTALL SONAME 'auth_ed25519'")
  } catch (error) {
    t.plan(0, `this MariaDB has no ed25519 plugin: ${(error as Error).message}`)
    return
  }
  await db.admin.query("CREATE USER 'edward'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('correct horse')")
  await db.admin.query("GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER ON sessions.* TO 'edward'@'%'")
  const result = await refusedStart(t, { ...env('sessions', 'edward', 'correct horse'), SESSION_HOST: '127.0.0.1', SESSION_PORT: String(db.server.port) })
  t.match(result.stderr, new RegExp(`^the database server at 127\\.0\\.0\\.1:${db.server.port} refused the login of SESSION_USER edward \\(SESSION_DATABASE sessions\\): .*client_ed25519.*; check SESSION_USER`))
})
