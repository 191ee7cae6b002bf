import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { baseEnv, createTestDatabase, httpRequest } from './helper.js'
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
