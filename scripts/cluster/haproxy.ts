// HAProxy on 127.0.0.1 for tests and `npm run cluster`, from deploy/haproxy-app.cfg (HTTP, in
// front of app instances) or deploy/haproxy-galera.cfg (TCP, in front of Galera nodes, with
// deploy/galera-check.mjs as the per-node health check). Same cleanup guarantees as galera.ts:
// children die with this process, temp dirs are removed.
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import {
  DEPLOY_DIR, exited, findExecutable, httpStatus, makeTempDir, removeTempDir, render, signalGroup, tail, track,
  waitExit, type GaleraCluster
} from './galera.js'
import { freePort } from '../../test/support/private-mariadb.js'

const execFileAsync = promisify(execFile)

export interface Backend { host: string, port: number, checkPort?: number }

export interface Service { readonly port: number, stop(): Promise<void> }

function findHaproxy (): string {
  const found = findExecutable('haproxy')
  if (!found) throw new Error('haproxy is not installed: install it with `apt-get install -y haproxy`')
  return found
}

function serverLines (config: 'app' | 'galera', backends: Backend[]): string {
  const prefix = config === 'app' ? 'app' : 'node'
  return backends.map(({ host, port, checkPort }, i) =>
    `server ${prefix}${i + 1} ${host}:${port} check${checkPort ? ` port ${checkPort}` : ''}`
  ).join('\n  ')
}

function acceptsConnections (port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => resolve(false))
  })
}

/** Spawns a long-running child in its own process group, stdout/stderr into `logFile`, and waits
 *  until `ready()`; on failure kills it and throws with the log's last lines. */
async function launch (command: string, args: string[], logFile: string, ready: () => Promise<boolean>): Promise<ChildProcess> {
  const fd = openSync(logFile, 'a')
  const child = track(spawn(command, args, { stdio: ['ignore', fd, fd], detached: true }))
  closeSync(fd)
  const deadline = Date.now() + 15000
  while (Date.now() < deadline) {
    if (exited(child)) break
    if (await ready()) return child
    await sleep(100)
  }
  signalGroup(child, 'SIGKILL')
  throw new Error(`${command} did not start\n--- last lines of ${logFile} ---\n${tail(logFile)}`)
}

async function stopChild (child: ChildProcess): Promise<void> {
  signalGroup(child, 'SIGTERM')
  const timer = setTimeout(() => signalGroup(child, 'SIGKILL'), 5000)
  await waitExit(child)
  clearTimeout(timer)
}

/** A long-running child started in a temporary directory of its own: stopping it removes the directory. */
async function serviceInTempDir (prefix: string, port: number, start: (dir: string) => Promise<ChildProcess>): Promise<Service> {
  const dir = makeTempDir(prefix)
  try {
    const child = await start(dir)
    return {
      port,
      stop: async () => {
        await stopChild(child)
        removeTempDir(dir)
      }
    }
  } catch (error) {
    removeTempDir(dir)
    throw error
  }
}

export async function startHaproxy (options: { config: 'app' | 'galera', port?: number, backends: Backend[] }): Promise<Service> {
  const haproxy = findHaproxy()
  const port = options.port ?? await freePort()
  return await serviceInTempDir(`haproxy-${options.config}-`, port, async (dir) => {
    const file = join(dir, 'haproxy.cfg')
    const template = readFileSync(join(DEPLOY_DIR, `haproxy-${options.config}.cfg`), 'utf8')
    writeFileSync(file, render(template, { PORT: port, SERVERS: serverLines(options.config, options.backends), DEPLOY: DEPLOY_DIR.replace(/\/$/, '') }))
    // -c first: a config error reads better than a child that exits at once.
    await execFileAsync(haproxy, ['-c', '-f', file])
    // -db: foreground, no daemon, so the child is HAProxy itself and dies with its group.
    return await launch(haproxy, ['-f', file, '-db'], join(dir, 'haproxy.log'), () => acceptsConnections(port))
  })
}

/** deploy/galera-check.mjs for the node on `sqlPort` (root without password, as in galera.ts). */
export async function startGaleraCheck (options: { sqlPort: number, port?: number }): Promise<Service> {
  const port = options.port ?? await freePort()
  // Up once it answers at all: 503 is its answer for a node that is not Synced.
  return await serviceInTempDir('galera-check-', port, (dir) => launch(process.execPath, [
    join(DEPLOY_DIR, 'galera-check.mjs'), '--port', String(port), '--mysql-port', String(options.sqlPort)
  ], join(dir, 'check.log'), async () => (await httpStatus(`http://127.0.0.1:${port}/`)) !== undefined))
}

/** haproxy-galera in front of every node of `cluster`, each with its galera-check. */
export async function startGaleraProxy (cluster: GaleraCluster, port?: number): Promise<Service> {
  const checks = await Promise.all(cluster.nodes.map((node) => startGaleraCheck({ sqlPort: node.sqlPort })))
  const stopChecks = () => Promise.all(checks.map((check) => check.stop()))
  try {
    const backends = cluster.nodes.map((node, i) => ({ host: '127.0.0.1', port: node.sqlPort, checkPort: checks[i]?.port }))
    const proxy = await startHaproxy({ config: 'galera', port, backends })
    return {
      port: proxy.port,
      stop: async () => {
        await proxy.stop()
        await stopChecks()
      }
    }
  } catch (error) {
    await stopChecks()
    throw error
  }
}
