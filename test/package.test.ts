import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { baseEnv, countRows, createTestDatabase, httpRequest, sessionCookie, type Env } from './helper.js'
import { freePort } from './support/private-mariadb.js'

// An app of its own on the package, as a user gets it: `npm pack`, the example installs the
// tarball (outside this repository, so nothing resolves from its node_modules), compiles with its
// own TypeScript, and runs over real HTTP against MariaDB.

const root = new URL('..', import.meta.url).pathname
const npm = (args: string[], cwd: string) => execFileSync('npm', args, { cwd, stdio: 'pipe', timeout: 240_000, encoding: 'utf8' })

/** Packs the project as `npm pack` would after its prepack build, without touching its dist/. */
function packProject (into: string): string {
  // Every file the repository tracks, so package.json's `files` is what keeps the rest out.
  const staging = join(into, 'staging')
  const tracked = execFileSync('git', ['ls-files', '-z'], { cwd: root, encoding: 'utf8' }).split('\0').filter(Boolean)
  for (const file of tracked) cpSync(join(root, file), join(staging, file))
  execFileSync(process.execPath, ['scripts/build.mjs', join(staging, 'dist')], { cwd: root, stdio: 'pipe' })
  const [packed] = JSON.parse(npm(['pack', staging, '--pack-destination', into, '--ignore-scripts', '--json'], root)) as Array<{ filename: string, files: Array<{ path: string }> }>
  return join(into, packed!.filename)
}

function startExample (t: Test, appDir: string, env: Env): Promise<string> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(process.execPath, ['dist/server.js'], { cwd: appDir, env: { PATH: process.env.PATH, ...env } })
    t.teardown(() => { child.kill() })
    let output = ''
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      const url = /listening at (http:\S+)/.exec(output)?.[1]
      if (url) resolve(url)
    })
    child.stderr!.on('data', (chunk: Buffer) => { output += chunk.toString() })
    child.once('exit', (code) => reject(new Error(`the example exited with ${code}: ${output}`)))
  })
}

const work = mkdtempSync(join(tmpdir(), 'fsb-package-'))
t.teardown(() => rmSync(work, { recursive: true, force: true }))

const tarball = packProject(work)
const appDir = join(work, 'app')
cpSync(join(root, 'examples/fastify-app'), appDir, { recursive: true, filter: (path) => !/node_modules|dist/.test(path) })
cpSync(join(root, 'test/fixtures/consumer/types-check.ts'), join(appDir, 'src/types-check.ts'))

t.test('the tarball holds what a user needs and nothing else', async (t) => {
  const listing = execFileSync('tar', ['tzf', tarball], { encoding: 'utf8' }).split('\n').filter(Boolean)
  t.ok(listing.includes('package/dist/index.js'), 'the entry point')
  t.ok(listing.includes('package/dist/index.d.ts'), 'its declarations')
  t.ok(listing.includes('package/dist/web/index.html'), 'the page the page routes serve')
  t.ok(listing.length > 50, `${listing.length} files`)
  t.same(listing.filter((path) => /^package\/(src|test|bench|scripts|examples|node_modules|\.ci)\/|\.map$|tsbuildinfo|^package\/\.(git|env$)/.test(path)), [], 'no sources, tests, CI, maps, build state or secrets')
})

t.test('the example installs the tarball, type-checks against its declarations, and builds', async (t) => {
  npm(['install', '--prefer-offline', '--no-audit', '--no-fund', tarball], appDir)
  t.ok(readdirSync(join(appDir, 'node_modules/fastify-session-backend/dist')).includes('index.d.ts'))
  try {
    npm(['run', 'build'], appDir)
  } catch (error) {
    t.fail(`tsc failed: ${(error as { stdout?: string }).stdout ?? String(error)}`)
  }
  t.pass('tsc compiled the example and the type checks, every @ts-expect-error meeting its error')
})

t.test('the example app over real HTTP: its own routes, hooks, error handler and cookies beside the session', async (t) => {
  const db = await createTestDatabase(t)
  const base = await startExample(t, appDir, { ...baseEnv, ...db.env, PORT: String(await freePort()) })

  const outside = await httpRequest(`${base}/public`)
  t.equal(outside.status, 200)
  t.equal(outside.headers['x-served-by'], 'example-app', 'the app\'s own hook runs outside the session scope')
  t.equal(outside.headers['set-cookie'], undefined, 'a route outside the plugin\'s scope gets no session cookie')
  t.equal(await countRows(db), 0, 'and no row')

  const first = await httpRequest(`${base}/visits`, { method: 'POST' })
  t.same(first.json(), { visits: 1 })
  const cookie = sessionCookie(first.headers['set-cookie'])
  t.ok(cookie, 'a session route gets the session cookie')
  t.equal(first.headers['x-served-by'], 'example-app', 'the app\'s own hook runs inside the scope too')
  t.equal(first.headers['cache-control'], 'no-store')
  t.equal(await countRows(db), 1, 'written before the answer')

  const second = await httpRequest(`${base}/visits`, { method: 'POST', headers: { cookie: cookie! } })
  t.same(second.json(), { visits: 2 }, 'the session carries the app\'s own field')

  const themed = await httpRequest(`${base}/theme/dark`, { method: 'PUT', headers: { cookie: cookie! } })
  const setCookies = [themed.headers['set-cookie'] ?? []].flat()
  t.ok(setCookies.some((value) => value.startsWith('theme=dark')), '@fastify/cookie sets its cookie in the session scope')
  const publicWithTheme = await httpRequest(`${base}/public`, { headers: { cookie: `${cookie!}; theme=dark` } })
  t.same(publicWithTheme.json(), { public: true, theme: 'dark' }, 'and parses it beside the session cookie')

  const anonymous = await httpRequest(`${base}/me`, { headers: { cookie: cookie! } })
  t.equal(anonymous.status, 401)
  t.same(anonymous.json(), { problem: 'Log in first' }, 'the app\'s own error handler answers the package\'s errors')

  const login = await httpRequest(`${base}/session/login`, { method: 'POST', headers: { cookie: cookie! }, body: { username: 'ann', password: 'correct horse battery staple' } })
  t.equal(login.status, 200, 'the package\'s login routes with the app\'s own authenticator')
  const loggedIn = sessionCookie(login.headers['set-cookie'])
  t.not(loggedIn, cookie, 'a new session id at login')
  const me = await httpRequest(`${base}/me`, { headers: { cookie: loggedIn! } })
  t.same(me.json(), { name: 'ann', visits: 0 })
})

t.test('the example with its database unreachable: 503 with Retry-After through its own error handler, no cookie', async (t) => {
  const closedPort = await freePort()
  const base = await startExample(t, appDir, {
    ...baseEnv,
    SESSION_HOST: '127.0.0.1',
    SESSION_PORT: String(closedPort),
    SESSION_USER: 'root',
    SESSION_DATABASE: 'nowhere',
    PORT: String(await freePort())
  })
  const res = await httpRequest(`${base}/visits`, { method: 'POST' })
  t.equal(res.status, 503)
  t.equal(res.headers['retry-after'], '5')
  t.same(res.json(), { problem: 'try again later' })
  t.equal(res.headers['set-cookie'], undefined, 'no cookie names a session that was not stored')
  t.equal((await httpRequest(`${base}/public`)).status, 200, 'routes outside the scope do not depend on the store')
})
