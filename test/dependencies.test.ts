import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { basename, join } from 'node:path'
import semver from 'semver'
import t from 'tap'

// SECURITY 22: express-mysql-session 3.0.3 asks for mysql2 3.10.2, which has known flaws; the
// project pins a patched mysql2 and forces it on every dependency with `overrides`.

const root = new URL('..', import.meta.url).pathname
const require = createRequire(import.meta.url)

/** Every directory named mysql2 that npm installed, at any depth. */
function installedMysql2 (nodeModules: string, found: string[] = []): string[] {
  const visit = (dir: string) => {
    if (basename(dir) === 'mysql2') found.push(dir)
    if (existsSync(join(dir, 'node_modules'))) installedMysql2(join(dir, 'node_modules'), found)
  }
  for (const entry of readdirSync(nodeModules, { withFileTypes: true })) {
    if (!entry.isDirectory() || entry.name.startsWith('.')) continue
    const path = join(nodeModules, entry.name)
    if (entry.name.startsWith('@')) for (const scoped of readdirSync(path)) visit(join(path, scoped))
    else visit(path)
  }
  return found
}

const atLeast = (version: string, minimum: number[]) => {
  const parts = version.split('.').map(Number)
  const index = minimum.findIndex((value, i) => parts[i] !== value)
  return index === -1 || (parts[index] ?? 0) > (minimum[index] ?? 0)
}

t.test('every installed mysql2 is 3.24 or later', async (t) => {
  const copies = installedMysql2(join(root, 'node_modules'))
  t.ok(copies.length > 0, `found ${copies.length}`)
  for (const dir of copies) {
    const { version } = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string }
    t.ok(atLeast(version, [3, 24, 0]), `${dir.slice(root.length)}: ${version}`)
  }
})

t.test('express-mysql-session loads the same mysql2 as the project', async (t) => {
  const fromStore = createRequire(require.resolve('express-mysql-session'))
  t.equal(fromStore.resolve('mysql2/promise'), require.resolve('mysql2/promise'))
})

t.test('package.json pins mysql2 exactly and overrides it everywhere', async (t) => {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { dependencies: Record<string, string>, overrides: Record<string, string> }
  t.match(pkg.dependencies.mysql2, /^\d+\.\d+\.\d+$/, 'an exact version')
  t.equal(pkg.overrides.mysql2, '$mysql2', 'every dependency gets that version')
})

t.test('bcrypt is native and prebuilt: every platform binding locked, no install script', async (t) => {
  // SECURITY 27: hashing off the event loop. The bindings come as npm packages, one per platform,
  // so `npm ci` downloads nothing else and builds nothing; a platform missing from the lockfile
  // would install a package that cannot load there.
  interface Locked { version?: string, hasInstallScript?: boolean, optionalDependencies?: Record<string, string> }
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as { packages: Record<string, Locked> }
  const bcrypt = lock.packages['node_modules/@node-rs/bcrypt']
  t.ok(bcrypt, '@node-rs/bcrypt is locked')
  t.notOk(bcrypt?.hasInstallScript, 'it has no install script')
  const bindings = Object.entries(bcrypt?.optionalDependencies ?? {})
  t.ok(bindings.length >= 10, `${bindings.length} platform bindings`)
  for (const [name, version] of bindings) {
    t.equal(lock.packages[`node_modules/${name}`]?.version, version, `${name} ${version} is locked`)
    t.notOk(lock.packages[`node_modules/${name}`]?.hasInstallScript, `${name} has no install script`)
  }
  t.notOk(lock.packages['node_modules/bcryptjs'], 'bcryptjs (bcrypt in JavaScript, on the event loop) is gone')
})

t.test('npm ci warns about no engine: every locked package accepts each Node version package.json claims', async (t) => {
  // Issue 11: an install on a claimed version must not print EBADENGINE. The oldest release of
  // each claimed range is checked, and the Node running the test (the one `npm ci` just used).
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { engines: { node: string } }
  const claimed = pkg.engines.node.split('||').map((range) => semver.minVersion(range)?.version)
  t.same(claimed.filter((version) => version === undefined), [], `every range of "${pkg.engines.node}" has a lowest version`)
  const versions = [...claimed as string[], process.versions.node]
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version?: string, engines?: { node?: string } | string[] }> }
  const refusing: string[] = []
  for (const [path, locked] of Object.entries(lock.packages)) {
    const range = Array.isArray(locked.engines) ? undefined : locked.engines?.node
    if (path === '' || range === undefined) continue
    for (const version of versions) {
      if (!semver.satisfies(version, range)) refusing.push(`${path.replace(/^.*node_modules\//, '')}@${locked.version} wants node ${range}, not ${version}`)
    }
  }
  t.same(refusing, [], 'no locked package refuses a claimed Node version')
})
