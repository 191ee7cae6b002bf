import type { RowDataPacket } from 'mysql2/promise'
import t from 'tap'
import { Client, baseEnv, serve, type Env } from './helper.js'
import { loginAs, writeUsersFile } from './support/accounts.js'
import { freePort } from './support/private-mariadb.js'
import { runProcess } from './support/server-process.js'

// `npm run sessions` runs dist/cli/sessions.js; here the same file runs from source in a child
// process, with exactly the variables a server on the test's database would have.
const cli = new URL('../src/cli/sessions.ts', import.meta.url).pathname
const sessions = (env: Env, ...args: string[]) => runProcess([cli, ...args], { ...baseEnv, ...env })
const lastLine = (text: string) => text.trimEnd().split('\n').at(-1)
const now = () => Math.floor(Date.now() / 1000)

/** A server on its own database with ann and bob logged in, ann on two devices. */
async function withUsers (t: Parameters<typeof serve>[0]) {
  const users = { AUTH_USERS_FILE: writeUsersFile(t, { ann: 'correct horse', bob: 'battery staple' }) }
  const { base, db } = await serve(t, users)
  const devices = [new Client(base), new Client(base), new Client(base)] as const
  await loginAs(devices[0], 'ann', 'correct horse', { 'user-agent': 'laptop' })
  await loginAs(devices[1], 'ann', 'correct horse', { 'user-agent': 'phone' })
  await loginAs(devices[2], 'bob', 'battery staple')
  return { db, devices, env: db.env }
}

t.test('count: the live sessions, alone on the last line', async (t) => {
  const { db, env } = await withUsers(t)
  await db.pool.query('INSERT INTO sessions (session_id, expires, data) VALUES (?, ?, ?)', ['expired', now() - 10, '{"cookie":{}}'])
  const exit = await sessions(env, 'count')
  t.equal(exit.code, 0, exit.stderr)
  t.equal(lastLine(exit.stdout), '3', 'three logged-in sessions, not the expired row')
})

t.test('prune: removes the expired rows in batches and says how many', async (t) => {
  const { db, env } = await withUsers(t)
  const rows = Array.from({ length: 25 }, (_, i) => [`expired${i}`, now() - 10, '{"cookie":{}}'])
  await db.pool.query('INSERT INTO sessions (session_id, expires, data) VALUES ?', [rows])
  const exit = await sessions(env, 'prune')
  t.equal(exit.code, 0, exit.stderr)
  t.equal(lastLine(exit.stdout), '25 expired sessions removed')
  const [[left]] = await db.pool.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM sessions')
  t.equal(Number(left?.n), 3, 'the live ones stay')
})

t.test('list-user: one line per session, with the handles the API shows and never an id', async (t) => {
  const { db, devices, env } = await withUsers(t)
  const exit = await sessions(env, 'list-user', 'ann')
  t.equal(exit.code, 0, exit.stderr)
  const lines = exit.stdout.trimEnd().split('\n').map((line) => JSON.parse(line))
  t.equal(lines.length, 2)
  for (const line of lines) t.same(Object.keys(line), ['handle', 'createdAt', 'lastSeenAt', 'userAgent', 'device', 'ip'])
  t.same(lines.map((line) => line.userAgent).sort(), ['laptop', 'phone'])
  t.match(lines[0], { ip: '127.0.0.1', createdAt: /^\d{4}-\d\d-\d\dT/ })

  const fromApi = (await devices[0].request('/session/all')).json() as Array<{ id: string }>
  t.same(lines.map((line) => line.handle).sort(), fromApi.map((entry) => entry.id).sort(), 'the same handles as GET /session/all')
  const [ids] = await db.pool.query<RowDataPacket[]>('SELECT session_id FROM sessions')
  for (const { session_id: id } of ids) t.notOk(exit.stdout.includes(id), 'no session id in the output')
  t.equal((await sessions(env, 'list-user', 'nobody')).stdout, '', 'an unknown user has none')
})

t.test('revoke-user: ends every session of the user, at their next request', async (t) => {
  const { devices, env } = await withUsers(t)
  const exit = await sessions(env, 'revoke-user', 'ann')
  t.equal(exit.code, 0, exit.stderr)
  t.equal(lastLine(exit.stdout), '2 sessions of ann ended')
  for (const device of devices.slice(0, 2)) t.equal((await device.request('/session')).json().authenticated, false, 'ann is logged out')
  t.equal((await devices[2].request('/session')).json().user?.name, 'bob', 'bob is not')
})

t.test('without SESSION_HOST it says it needs the database: exit 1', async (t) => {
  const exit = await sessions({}, 'count')
  t.equal(exit.code, 1)
  t.match(exit.stderr, /^npm run sessions needs the database: set SESSION_HOST/)
  t.equal(exit.stdout, '')
})

t.test('a database that does not answer: one line, no stack, exit 1, quickly', async (t) => {
  const port = await freePort()
  const exit = await sessions({ SESSION_HOST: '127.0.0.1', SESSION_PORT: String(port), SESSION_USER: 'root', SESSION_DATABASE: 'x' }, 'count')
  t.equal(exit.code, 1)
  t.equal(exit.stderr, `cannot reach the session database at 127.0.0.1:${port} (ECONNREFUSED)\n`)
  t.ok(exit.ms < 10000, `gave up in ${exit.ms} ms`)
})

t.test('revoke-user --issuer: a provider\'s user of the same name is another user', async (t) => {
  const { db, devices, env } = await withUsers(t)
  const provider = { name: 'ann', iss: 'https://idp.example', sub: 'sub-1' }
  const expires = now() + 3600
  await db.pool.query('INSERT INTO sessions (session_id, expires, data) VALUES (?, ?, ?)',
    ['sso-ann', expires, JSON.stringify({ cookie: { originalMaxAge: 3600000, expires: new Date(expires * 1000).toISOString() }, createdAt: Date.now(), user: provider })])
  const exit = await sessions(env, 'revoke-user', 'ann', '--issuer', 'https://idp.example', '--subject', 'sub-1')
  t.equal(exit.code, 0, exit.stderr)
  t.equal(lastLine(exit.stdout), '1 sessions of ann ended')
  t.equal((await devices[0].request('/session')).json().user?.name, 'ann', 'the local ann is still logged in')
  const [rows] = await db.pool.query<RowDataPacket[]>('SELECT 1 FROM sessions WHERE session_id = ?', ['sso-ann'])
  t.equal(rows.length, 0, 'the provider\'s ann is not')
})

t.test('an unknown command, a missing NAME or an unknown option: usage on stderr, exit 2', async (t) => {
  for (const args of [[], ['frob'], ['list-user'], ['count', 'extra'], ['count', '--all'], ['revoke-user', 'ann', '--subject', 'x']]) {
    const exit = await sessions({}, ...args)
    t.equal(exit.code, 2, args.join(' ') || '(nothing)')
    t.match(exit.stderr, /^usage: npm run sessions -- <command>\n/)
  }
})

t.test('a bad variable stops it as it stops the server', async (t) => {
  const exit = await sessions({ SESSION_PORT: 'abc' }, 'count')
  t.equal(exit.code, 1)
  t.equal(exit.stderr, 'SESSION_PORT must be an integer 1-65535\n')
})
