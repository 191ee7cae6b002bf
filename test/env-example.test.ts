import { copyFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { Client } from './helper.js'
import { loginAs, writeUsersFile } from './support/accounts.js'
import { freePort } from './support/private-mariadb.js'
import { startServer } from './support/server-process.js'

// Issue 11: `cp .env.example .env` gives a development server that logs people in over plain
// HTTP (a Secure-only cookie would refuse every login there), with the file's values alone: the
// in-memory store, nothing to set up first. Only the users file and where to listen are given.

t.test('a server started on a copy of .env.example logs in over plain HTTP', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'env-example-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  copyFileSync(new URL('../.env.example', import.meta.url), join(dir, '.env'))
  const port = await freePort()
  const server = await startServer({
    AUTH_USERS_FILE: writeUsersFile(t, { ann: 'correct horse' }),
    HOST: '127.0.0.1',
    PORT: String(port)
  }, dir)
  t.teardown(async () => {
    server.child.kill('SIGTERM')
    await server.exited
  })
  const client = new Client(`http://127.0.0.1:${port}`)
  const login = await loginAs(client, 'ann', 'correct horse')
  t.equal(login.status, 200, 'the login is answered')
  t.ok(client.cookie, 'and its cookie is sent over plain HTTP')
  const me = (await client.request('/session')).json()
  t.equal(me.authenticated, true, 'the login holds over plain HTTP')
  t.same(me.user, { name: 'ann' })
  server.child.kill('SIGTERM')
  t.match((await server.exited).stdout, /in-memory|in memory/i, 'on the in-memory store')
})
