import { execFileSync, spawn } from 'node:child_process'
import t from 'tap'
import { httpRequest } from './helper.js'
import { freePort } from './support/private-mariadb.js'
import { loginThroughProvider } from './support/sso-login.js'

// `npm run dev:sso` for real: npm, the script, the dev provider and `tsx watch` with the server,
// as a developer starts them. The script puts tsx watch in a process group of its own, which a
// Ctrl-C in the terminal (SIGINT to the foreground group) does not reach: the script must stop it.

const ROOT = new URL('..', import.meta.url).pathname
const START_MS = 30000
const STOP_MS = 10000

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

interface Running { pid: number, pgid: number, args: string }

/** The live (not zombie) processes under `root`, with their process groups. */
function descendants (root: number): Running[] {
  const all = execFileSync('ps', ['-eo', 'pid=,ppid=,pgid=,stat=,args=']).toString().split('\n').flatMap((line) => {
    const match = /^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\S+)\s+(.*)$/.exec(line)
    return match ? [{ pid: Number(match[1]), ppid: Number(match[2]), pgid: Number(match[3]), zombie: match[4]?.startsWith('Z'), args: match[5] as string }] : []
  })
  const found: Running[] = []
  const parents = new Set([root])
  for (let grew = true; grew;) {
    grew = false
    for (const process of all) {
      if (parents.has(process.ppid) && !parents.has(process.pid)) {
        parents.add(process.pid)
        if (!process.zombie) found.push({ pid: process.pid, pgid: process.pgid, args: process.args })
        grew = true
      }
    }
  }
  return found
}

/** The live processes of these process groups, wherever they have been reparented to. */
function inGroups (groups: Set<number>): string[] {
  return execFileSync('ps', ['-eo', 'pgid=,stat=,args=']).toString().split('\n').flatMap((line) => {
    const match = /^\s*(\d+)\s+(\S+)\s+(.*)$/.exec(line)
    return match && groups.has(Number(match[1])) && !match[2]?.startsWith('Z') ? [match[3] as string] : []
  })
}

async function answers (url: string): Promise<boolean> {
  try {
    return (await httpRequest(url)).status === 200
  } catch {
    return false
  }
}

t.test('npm run dev:sso: the provider and the server answer, a login through the provider works, Ctrl-C stops both', async (t) => {
  const port = await freePort()
  let oidcPort = await freePort()
  while (oidcPort === port) oidcPort = await freePort()
  const app = `http://127.0.0.1:${port}`
  const issuer = `http://127.0.0.1:${oidcPort}`

  // Only what npm needs and what the test sets: no NODE_ENV (the script sets development), no
  // SESSION_HOST (the in-memory store), nothing of the developer's or the test runner's.
  const env: Record<string, string> = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', PORT: String(port), OIDC_DEV_PORT: String(oidcPort), LOG_LEVEL: 'info' }
  const child = spawn('npm', ['run', 'dev:sso'], { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
  const pid = child.pid as number
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }))
  })
  // Every process group seen under npm: its own, and the one the script gives tsx watch.
  const groups = new Set([pid])
  const noteGroups = () => { for (const { pgid } of descendants(pid)) groups.add(pgid) }
  t.teardown(async () => {
    // Whatever happened above: nothing may be left running, in any of the groups.
    if (child.exitCode === null && child.signalCode === null) noteGroups()
    for (const group of groups) {
      try { process.kill(-group, 'SIGKILL') } catch {} // gone already, as it should be
    }
  })

  const started = Date.now()
  while (!(await answers(`${app}/health/live`) && await answers(`${issuer}/.well-known/openid-configuration`))) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`npm run dev:sso exited (${child.exitCode ?? child.signalCode}) before answering:\n${stdout}\n${stderr}`)
    if (Date.now() - started > START_MS) throw new Error(`npm run dev:sso did not answer within ${START_MS} ms:\n${stdout}\n${stderr}`)
    noteGroups()
    await sleep(200)
  }
  noteGroups()
  t.comment(`both answered after ${Date.now() - started} ms`)
  t.ok(groups.size >= 2, `the server runs in a process group of its own (${[...groups].join(', ')})`)

  const discovery = (await httpRequest(`${issuer}/.well-known/openid-configuration`)).json()
  t.equal(discovery.issuer, issuer, 'the provider is on OIDC_DEV_PORT')
  const hint = stdout.split('\n').find((line) => /\bopen\b/.test(line))
  t.ok(hint, 'it prints what to open', { stdout })
  t.match(hint, new RegExp(`open ${app.replace(/[.]/g, '\\.')}\\b`), 'the PUBLIC_URL')
  t.match(hint, issuer, 'and where the provider is')

  const login = await loginThroughProvider(app, { username: 'demo' })
  t.equal(login.callbackStatus, 302, 'the callback logs in')
  t.equal(login.location, `${app}/`, 'and returns to the page')
  const session = await httpRequest(`${app}/session`, { headers: { cookie: login.appCookie } })
  t.match(session.json(), { authenticated: true, user: { name: 'demo', iss: issuer, sub: 'demo' } }, 'the session is demo\'s, from the dev provider')
  t.match(stdout, /identity provider discovered: single sign-on is on/, 'the server logs at info level')

  // Ctrl-C in a terminal signals the foreground process group: npm's.
  const stopping = Date.now()
  process.kill(-pid, 'SIGINT')
  const stoppedAnswering = async () => {
    while (await answers(`${app}/health/live`) || await answers(`${issuer}/.well-known/openid-configuration`)) {
      if (Date.now() - stopping > STOP_MS) return false
      await sleep(100)
    }
    return true
  }
  t.ok(await stoppedAnswering(), `neither answers within ${STOP_MS} ms`)
  let timer: NodeJS.Timeout | undefined
  const exit = await Promise.race([exited, new Promise<undefined>((resolve) => { timer = setTimeout(() => resolve(undefined), STOP_MS - (Date.now() - stopping)) })])
  clearTimeout(timer)
  t.ok(exit && (exit.code === 0 || exit.signal !== null), 'npm exits, 0 or by the signal', { exit, stderr })
  t.comment(`npm exited with ${exit?.code ?? exit?.signal}`)
  // npm may exit before the script it ran has finished stopping what it started.
  while (inGroups(groups).length > 0 && Date.now() - stopping < STOP_MS) await sleep(100)
  t.same(inGroups(groups), [], 'no process of any of its groups is left')
  t.comment(`stopped in ${Date.now() - stopping} ms`)
  t.notMatch(stderr, /back-channel logout failed|server_error/, 'the provider reported no failure', { stderr })
  // tsx watch says so when the server does not close within 5 s of its signal and is killed.
  t.notMatch(`${stdout}${stderr}`, /Force killing/, 'the server closed by itself')
})
