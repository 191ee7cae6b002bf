import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { baseEnv, createTestDatabase, httpRequest } from './helper.js'
import { createTestUser } from './support/database-users.js'
import { freePort } from './support/private-mariadb.js'
import { runProcess, serverEntry } from './support/server-process.js'

t.test('.env in the working directory is read; the environment wins over it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dotenv-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, '.env'), 'SESSION_PORT=abc\nSESSION_TABLE=bad-name\n')
  const fromFile = await runProcess([serverEntry], {}, undefined, dir)
  t.equal(fromFile.code, 1)
  t.equal(fromFile.stderr, 'SESSION_PORT must be an integer 1-65535; SESSION_TABLE must match ^[A-Za-z0-9_]{1,64}$\n')
  const overridden = await runProcess([serverEntry], { SESSION_PORT: '3306', SESSION_TABLE: 'ok', PORT: 'x' }, undefined, dir)
  t.equal(overridden.stderr, 'PORT must be an integer 0-65535\n', 'only the variable the environment got wrong')
})

t.test('a bad variable: exit 1 and one line on stderr naming it, before listening', async (t) => {
  const port = await freePort()
  const result = await runProcess([serverEntry], { SESSION_PORT: 'abc', PORT: String(port) })
  t.equal(result.code, 1)
  t.equal(result.stderr, 'SESSION_PORT must be an integer 1-65535\n')
  t.notMatch(result.stdout, /listening/i)
})

t.test('production without a secret refuses to start', async (t) => {
  const result = await runProcess([serverEntry], { NODE_ENV: 'production', SESSION_HOST: '127.0.0.1', SESSION_USER: 'root', SESSION_DATABASE: 'x' })
  t.equal(result.code, 1)
  t.equal(result.stderr, 'SESSION_SECRET is required when NODE_ENV=production\n')
})

t.test('the server logs one line with its URL, serves, and exits 0 on SIGTERM and SIGINT', async (t) => {
  const db = await createTestDatabase(t)
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    const port = await freePort()
    let answered: number | undefined
    const result = await runProcess([serverEntry], { ...baseEnv, ...db.env, LOG_LEVEL: 'info', HOST: '127.0.0.1', PORT: String(port) }, (stdout, child) => {
      if (answered === undefined && stdout.includes('Server listening')) {
        answered = 0
        httpRequest(`http://127.0.0.1:${port}/session`).then((res) => {
          answered = res.status
          child.kill(signal)
        }, () => child.kill(signal))
      }
    })
    t.equal(answered, 200, `served before ${signal}`)
    t.equal(result.code, 0, `exit 0 on ${signal}`)
    const listening = result.stdout.split('\n').filter((line) => line.includes('Server listening'))
    t.equal(listening.length, 1, 'one listening line')
    t.equal(JSON.parse(listening[0] as string).msg, `Server listening at http://127.0.0.1:${port}`)
    t.notOk(result.stdout.includes('test-secret'), 'no secret in the log')
  }
})

t.test('bound to 0.0.0.0 it still logs one listening line', async (t) => {
  const port = await freePort()
  const result = await runProcess([serverEntry], { ...baseEnv, LOG_LEVEL: 'info', PORT: String(port) }, (stdout, child) => {
    if (stdout.includes('Server listening')) setTimeout(() => child.kill('SIGTERM'), 200)
  })
  t.equal(result.code, 0)
  t.equal(result.stdout.split('\n').filter((line) => line.includes('Server listening')).length, 1)
})

t.test('close() leaves nothing running: the process ends by itself', async (t) => {
  const db = await createTestDatabase(t)
  const result = await runProcess(['close-and-wait.ts'], { TEST_ENV: JSON.stringify({ ...baseEnv, ...db.env, SESSION_CLEANUP_INTERVAL: '1000' }) })
  t.equal(result.code, 0)
  t.equal(result.stdout, 'served 200, closed\n')
  t.ok(result.ms < 15000, `ended by itself in ${result.ms} ms`)
})

t.test('one start-up line names the store: the database\'s hosts, name, table and user, never the password', async (t) => {
  const db = await createTestDatabase(t)
  const user = await createTestUser(t, `GRANT ALL ON \`${db.name}\`.* TO %ACCOUNT%`)
  const port = await freePort()
  const where = `${db.env.SESSION_HOST}:${db.env.SESSION_PORT}`
  let served: number | undefined
  const result = await runProcess([serverEntry], { ...baseEnv, ...db.env, SESSION_USER: user.name, SESSION_PASSWORD: user.password, LOG_LEVEL: 'debug', HOST: '127.0.0.1', PORT: String(port) }, (stdout, child) => {
    if (served !== undefined || !stdout.includes('Server listening')) return
    served = 0
    httpRequest(`http://127.0.0.1:${port}/session`).then((res) => { served = res.status }, () => {}).finally(() => child.kill('SIGTERM'))
  })
  t.equal(served, 200, 'served a session from the database')
  t.equal(result.code, 0)
  const lines = result.stdout.split('\n').filter(Boolean).map((line) => JSON.parse(line) as { level: number, msg: string, hosts?: string[], user?: string })
  const store = lines.filter((line) => line.msg.startsWith('session store:'))
  t.equal(store.length, 1, 'one line')
  t.match(store[0], { level: 30, msg: `session store: MySQL/MariaDB at ${where}, database ${db.name}, table sessions, user ${user.name}`, hosts: [where], user: user.name })
  t.notOk(result.stdout.includes(user.password) || result.stderr.includes(user.password), 'the password appears in no output')

  const memory = await runProcess([serverEntry], { ...baseEnv, LOG_LEVEL: 'info', HOST: '127.0.0.1', PORT: String(await freePort()) }, (stdout, child) => {
    if (stdout.includes('Server listening')) child.kill('SIGTERM')
  })
  t.equal(memory.code, 0)
  const messages = memory.stdout.split('\n').filter(Boolean).map((line) => (JSON.parse(line) as { msg: string }).msg)
  t.same(messages.filter((msg) => /in memory|session store/.test(msg)), ['SESSION_HOST is not set: sessions are kept in memory and vanish when this process stops'], 'without SESSION_HOST, the one line says the store is in memory')
})

t.test('SESSION_PORT equal to PORT with the database on this machine: exit 1, one line naming both', async (t) => {
  const result = await runProcess([serverEntry], { ...baseEnv, LOG_LEVEL: 'info', SESSION_HOST: 'localhost', SESSION_USER: 'app', SESSION_DATABASE: 'sessions', SESSION_PORT: '9000', PORT: '9000' }, (stdout, child) => {
    if (stdout.includes('Server listening')) child.kill('SIGKILL')
  })
  t.equal(result.code, 1)
  t.equal(result.stderr, 'SESSION_PORT must not be PORT (9000) while the database is on this machine (SESSION_HOST localhost): SESSION_PORT is the database\'s port (3306 for MySQL/MariaDB), PORT the one this server listens on\n')
})

t.test('PORT already in use: exit 1, one line, no stack', async (t) => {
  const taken = createServer()
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => taken.close(() => resolve())))
  const port = (taken.address() as AddressInfo).port
  const result = await runProcess([serverEntry], { ...baseEnv, LOG_LEVEL: 'info', HOST: '127.0.0.1', PORT: String(port) })
  t.equal(result.code, 1)
  t.equal(result.stderr, `PORT ${port} on 127.0.0.1 is already in use: stop the program that listens there, or set PORT to a free port\n`)
  t.notMatch(result.stdout, /Server listening|EADDRINUSE/)
})

// Ports below ip_unprivileged_port_start need root (or CAP_NET_BIND_SERVICE); as root, the server runs as nobody.
function unprivilegedPortStart (): number {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_unprivileged_port_start', 'utf8').trim())
  } catch {
    return 1024
  }
}
const asRoot = process.getuid?.() === 0
const asNobody = asRoot ? { uid: 65534, gid: 65534 } : {}
/** Why the test cannot run here, or false: as root it runs the server as nobody, who must reach node, tsx and the source. */
function whyNotPrivilegedPort (): string | false {
  if (unprivilegedPortStart() <= 80) return 'port 80 is open to every user here'
  // npm run test:node-versions runs a node from root's cache, and a checkout under a private
  // folder (mktemp -d) is closed to nobody too.
  const probe = spawnSync('env', ['-u', 'NODE_OPTIONS', process.execPath, '--import', import.meta.resolve('tsx'), '-e', `require('node:fs').accessSync(${JSON.stringify(serverEntry)})`], { ...asNobody, cwd: tmpdir() })
  if (asRoot && probe.status !== 0) return `nobody may not run ${process.execPath} on ${serverEntry}`
  return false
}
t.test('a PORT this user may not listen on: exit 1, one line, no stack', { skip: whyNotPrivilegedPort() }, async (t) => {
  // Through env -u: tap's process tracking, which tap adds to NODE_OPTIONS, cannot write its report as nobody.
  const child = spawn('env', ['-u', 'NODE_OPTIONS', process.execPath, '--import', import.meta.resolve('tsx'), serverEntry], {
    env: { PATH: process.env.PATH, ...baseEnv, LOG_LEVEL: 'info', HOST: '127.0.0.1', PORT: '80' },
    cwd: tmpdir(),
    ...asNobody
  })
  // Should it listen after all (the port opened to this user meanwhile), it must not stay.
  t.teardown(() => { child.kill('SIGKILL') })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString()
    if (stdout.includes('Server listening')) child.kill('SIGKILL')
  })
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const code = await new Promise((resolve) => child.once('exit', resolve))
  t.equal(code, 1)
  t.notMatch(stdout, /Server listening|EACCES/)
  t.equal(stderr, 'PORT 80 on 127.0.0.1 is not allowed for this user: ports below 1024 need root or CAP_NET_BIND_SERVICE; set PORT to 1024 or above\n')
})
