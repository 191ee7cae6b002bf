import { spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { httpRequest } from './helper.js'
import { freePort } from './support/private-mariadb.js'

// Issue 11: the README's tour runs as pasted. Its shell blocks, marked `<!-- tour:NAME -->`, run
// here with bash in the repository, and what the curl blocks print must match the output blocks
// beside them. The only changes: the port (9000 may be taken, so a free one), the users file (in a
// temporary folder, not the checkout's), the database and user names (unique, dropped afterwards),
// and HOST=127.0.0.1 (servers started by tests listen on the loopback only; the listening line the
// README quotes is the same either way: bound to every interface, the server logs the loopback's).
// Like the reader's, `npm run users` and `npm start` build the checkout's dist/ when it is missing
// or older than src/. A shell block that is not run here says so, and why, in a
// `<!-- tour:not-run: REASON -->` line above it.

const root = new URL('..', import.meta.url).pathname
const readme = readFileSync(join(root, 'README.md'), 'utf8')

function tourBlocks (markdown: string): Map<string, string> {
  const blocks = new Map<string, string>()
  for (const match of markdown.matchAll(/^<!-- tour:([\w-]+) -->\n```\w*\n([\s\S]*?)^```$/gm)) {
    blocks.set(match[1] as string, match[2] as string)
  }
  return blocks
}

/** The first line of each shell block with neither a tour marker nor a not-run one (with a reason) above it. */
export function unmarkedShellBlocks (markdown: string): string[] {
  const unmarked: string[] = []
  for (const match of markdown.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)) {
    if (!/^(sh|bash|shell|zsh|console)$/.test(match[1] as string)) continue
    const above = markdown.slice(0, match.index).trimEnd().split('\n').pop() ?? ''
    if (!/^<!-- tour:([\w-]+|not-run: \S.*) -->$/.test(above)) unmarked.push((match[2] as string).split('\n')[0] as string)
  }
  return unmarked
}

const blocks = tourBlocks(readme)
const block = (name: string): string => {
  const code = blocks.get(name)
  if (code === undefined) throw new Error(`README.md has no <!-- tour:${name} --> block`)
  return code
}

// Every variable the server reads (.env.example lists them all), set empty: "the default", and
// the environment wins over a developer's own .env in the checkout, which a reader following the
// README does not have.
const serverVariables = [...readFileSync(join(root, '.env.example'), 'utf8').matchAll(/^([A-Z_]+)=/gm)].map((match) => match[1] as string)

/** The environment a reader's shell would have: this one, without the suite's own settings. */
function readerEnv (port: number): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [name, value] of Object.entries(process.env)) {
    if (!/^(TAP|TS_NODE|NODE_OPTIONS$|TEST_)/.test(name)) env[name] = value
  }
  for (const name of serverVariables) env[name] = ''
  return { ...env, PORT: String(port), HOST: '127.0.0.1' }
}

/** Runs a block to its end; its stdout. */
function runBlock (t: Test, code: string, env: NodeJS.ProcessEnv): string {
  const result = spawnSync('bash', ['-e', '-c', code], { cwd: root, env, encoding: 'utf8', timeout: 120_000 })
  t.equal(result.status, 0, `the block exits 0${result.stderr ? `: ${result.stderr.trim()}` : ''}`)
  return result.stdout
}

/** Starts a block that ends in a server, in a process group of its own, and waits until it answers; its output so far. */
async function startBlock (t: Test, code: string, env: NodeJS.ProcessEnv, port: number): Promise<() => string> {
  const child = spawn('bash', ['-e', '-c', code], { cwd: root, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  t.teardown(async () => {
    try { process.kill(-(child.pid as number), 'SIGTERM') } catch {}
    await exited
  })
  const deadline = Date.now() + 120_000
  while (Date.now() < deadline && child.exitCode === null) {
    const ready = await httpRequest(`http://127.0.0.1:${port}/health/live`).then((res) => res.status === 200, () => false)
    if (ready) return () => output
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
  throw new Error(`the server block did not answer on ${port}:\n${output}`)
}

/** An expected line, `…` standing for anything. */
const linePattern = (expected: string): RegExp =>
  new RegExp(`^${expected.split('…').map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`)

function matchesOutput (t: Test, actual: string, expected: string): void {
  const actualLines = actual.trimEnd().split('\n')
  const expectedLines = expected.trimEnd().split('\n')
  t.equal(actualLines.length, expectedLines.length, 'as many lines as the README shows')
  expectedLines.forEach((line, i) => t.match(actualLines[i], linePattern(line), `line ${i + 1}: ${line}`))
}

const mariadbAsRoot = spawnSync('mariadb', ['-u', 'root', '-e', 'SELECT 1'], { encoding: 'utf8' }).status === 0

t.test('the README tour, as pasted: development server, then production against MariaDB', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'readme-tour-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const port = await freePort()
  const usersFile = join(dir, 'users.htpasswd')
  const name = `tour_${randomBytes(4).toString('hex')}`
  const adapt = (code: string) => code
    .replaceAll('localhost:9000', `localhost:${port}`)
    .replace(/(\$PWD\/)?users\.htpasswd/g, usersFile)
    .replaceAll('sessions_app', name)

  await t.test('development: the server block starts and prints the line the README says to wait for, the curl block prints what the README shows', async (t) => {
    const quoted = /Wait for the line with `([^`]+)`/.exec(readme)?.[1]
    if (quoted === undefined) throw new Error('README.md no longer says which line to wait for')
    const listening = quoted.replace(':9000', `:${port}`)
    const env = readerEnv(port)
    const output = await startBlock(t, adapt(block('server')), env, port)
    // The line is written as the server starts to answer; give the pipe a moment.
    for (let i = 0; i < 40 && !output().includes(listening); i++) await new Promise((resolve) => setTimeout(resolve, 50))
    t.ok(output().includes(listening), `the server prints ${listening}`)
    matchesOutput(t, runBlock(t, adapt(block('client')), env), block('output'))
  })

  await t.test('production: the database block, the server block, the curl block', { skip: mariadbAsRoot ? false : 'needs `mariadb -u root` on this machine, as the README does' }, async (t) => {
    t.teardown(() => {
      spawnSync('mariadb', ['-u', 'root', '-e', `DROP DATABASE IF EXISTS ${name}; DROP USER IF EXISTS '${name}'@'127.0.0.1'`])
    })
    const env = readerEnv(port)
    runBlock(t, adapt(block('production-database')), env)
    await startBlock(t, adapt(block('production-server')), env, port)
    matchesOutput(t, runBlock(t, adapt(block('production-client')), env), block('production-output'))
  })
})

t.test('the tour blocks are all there', async (t) => {
  t.same([...blocks.keys()].sort(), ['client', 'output', 'production-client', 'production-database', 'production-output', 'production-server', 'server'])
})

t.test('every shell block of the README is run here, or says why not', async (t) => {
  t.same(unmarkedShellBlocks(readme), [], 'no shell block without a <!-- tour:NAME --> or <!-- tour:not-run: REASON --> line above it')
  t.same(unmarkedShellBlocks('<!-- tour:a -->\n```sh\nrun\n```\n\n<!-- tour:not-run: why -->\n```bash\nnot run\n```\n```sh\nforgotten\n```\n<!-- tour:not-run: -->\n```sh\nno reason\n```\n```text\nout\n```\n'),
    ['forgotten', 'no reason'], 'the check itself')
})

const inGitCheckout = spawnSync('git', ['rev-parse', '--is-inside-work-tree'], { cwd: root, encoding: 'utf8' }).stdout.trim() === 'true'

t.test('the files the README has a reader create are ignored by git', { skip: inGitCheckout ? false : 'not a git checkout' }, async (t) => {
  // Every users file a `--file` names, and .env (step 2 of production puts the variables there).
  const created = new Set(['.env', ...[...readme.matchAll(/--file ([\w./-]+)/g)].map((match) => match[1] as string)])
  t.ok(created.has('users.htpasswd'), 'the tour\'s users file is among them')
  for (const file of created) {
    t.equal(spawnSync('git', ['check-ignore', '-q', file], { cwd: root }).status, 0, `git ignores ${file}`)
  }
  t.equal(spawnSync('git', ['check-ignore', '-q', 'README.md'], { cwd: root }).status, 1, 'and the check tells a file git keeps apart')
})
