// A throwaway MariaDB Galera cluster on 127.0.0.1 for tests and `npm run cluster`: N nodes in
// one temporary directory, configured from deploy/galera-node.cnf, on free ports. Never touches
// the system MariaDB (port 3306, /var/lib/mysql, /run/mysqld).
import { spawn, execFile, type ChildProcess } from 'node:child_process'
import {
  chownSync, chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync,
  readdirSync, rmSync, statSync, writeFileSync
} from 'node:fs'
import { get } from 'node:http'
import { constants, tmpdir, userInfo } from 'node:os'
import { delimiter, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import { createConnection, type RowDataPacket } from 'mysql2/promise'
import { MARIADBD, freePort } from '../../test/support/private-mariadb.js'

const execFileAsync = promisify(execFile)

export const DEPLOY_DIR = new URL('../../deploy/', import.meta.url).pathname
export const GALERA = '/usr/lib/galera/libgalera_smm.so'

export interface GaleraNode {
  readonly name: string
  readonly sqlPort: number
  /** This node's stderr (the error log), appended across restarts. */
  readonly logFile: string
  /** SIGKILL (a crash) and waits for the exit. */
  kill(): Promise<void>
  /** SIGTERM (orderly shutdown) and waits for the exit. */
  stop(): Promise<void>
  /** (Re)starts and waits until it answers SQL and is Synced; rejoins by IST when it can. */
  start(): Promise<void>
}

export interface GaleraCluster {
  readonly nodes: GaleraNode[]
  /** "127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3" (SQL ports). */
  readonly hosts: string
  /** `mysql://root@127.0.0.1:port` of nodes[i] (0-based), root without password. */
  readonly rootUrl: (i: number) => string
  /** Kills every node and removes the temporary directory. */
  destroy(): Promise<void>
}

// ---- child processes and temp dirs that must not outlive us ----

const children = new Set<ChildProcess>()
const tempDirs = new Set<string>()
let hooked = false

/** Children run in their own process group (detached) so that helpers they spawn (the SST
 *  script, its rsync daemon) die with them; this signals the whole group. */
export function signalGroup (child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return
  try { process.kill(-child.pid, signal) } catch { /* already gone */ }
}

function cleanUpNow (): void {
  for (const child of children) signalGroup(child, 'SIGKILL')
  // A node killed a moment ago may still be writing: rmSync retries a directory that is not empty yet.
  for (const dir of tempDirs) {
    try { rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 }) } catch { /* an exit handler must not throw */ }
  }
}

/** Kills the child (and its group) and removes registered temp dirs if this process exits first;
 *  also turns SIGINT/SIGTERM/SIGHUP into an exit when nobody else handles them, since Node does
 *  not run 'exit' handlers on a fatal signal. */
function hookExit (): void {
  if (hooked) return
  hooked = true
  process.once('exit', cleanUpNow)
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    if (process.listenerCount(signal) === 0) process.once(signal, () => process.exit(128 + constants.signals[signal]))
  }
}

export function track (child: ChildProcess): ChildProcess {
  hookExit()
  children.add(child)
  child.once('exit', () => children.delete(child))
  return child
}

export function makeTempDir (prefix: string): string {
  hookExit()
  const dir = mkdtempSync(join(tmpdir(), prefix))
  tempDirs.add(dir)
  return dir
}

export function removeTempDir (dir: string): void {
  rmSync(dir, { recursive: true, force: true })
  tempDirs.delete(dir)
}

// ---- small helpers ----

/** Where `name` is installed: PATH, and the sbin directories a non-root PATH often lacks. */
export function findExecutable (name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin', '/usr/local/sbin']
  return dirs.map((dir) => join(dir, name)).find((path) => existsSync(path))
}

/** The status `url` answers with, or undefined when nothing answers within `timeoutMs`. */
export function httpStatus (url: string, timeoutMs = 5000): Promise<number | undefined> {
  return new Promise((resolve) => {
    const req = get(url, { timeout: timeoutMs }, (response) => {
      response.resume()
      resolve(response.statusCode)
    })
    req.once('error', () => resolve(undefined))
    req.once('timeout', () => req.destroy())
  })
}

/** Distinct free ports: freePort() may hand out the same port twice when asked in a row. */
async function freePorts (count: number): Promise<number[]> {
  const ports = new Set<number>()
  while (ports.size < count) ports.add(await freePort())
  return [...ports]
}

export function tail (file: string, lines = 30): string {
  if (!existsSync(file)) return '(no log)'
  return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n')
}

/** Fills @NAME@ placeholders outside comment lines (comments name the placeholders); one left
 *  without a value is a bug in the caller. */
export function render (template: string, values: Record<string, string | number>): string {
  return template.split('\n').map((line) => {
    if (line.trimStart().startsWith('#')) return line
    const text = line.replace(/@([A-Z_]+)@/g, (match, name: string) => name in values ? String(values[name]) : match)
    const left = text.match(/@[A-Z_]+@/)
    if (left) throw new Error(`placeholder ${left[0]} has no value`)
    return text
  }).join('\n')
}

export function exited (child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null
}

export function waitExit (child: ChildProcess): Promise<void> {
  if (exited(child)) return Promise.resolve()
  return new Promise((resolve) => child.once('exit', () => resolve()))
}

function chownTree (path: string, uid: number, gid: number): void {
  chownSync(path, uid, gid)
  if (!statSync(path).isDirectory()) return
  for (const entry of readdirSync(path)) chownTree(join(path, entry), uid, gid)
}

// ---- the nodes ----

interface Ports { sql: number, gmcast: number, ist: number, sst: number }

type Status = Record<string, string>

class Node implements GaleraNode {
  readonly logFile: string
  private child: ChildProcess | undefined

  constructor (
    readonly name: string,
    private readonly dir: string,
    readonly ports: Ports,
    private readonly peers: () => Node[],
    private readonly log: (line: string) => void
  ) {
    this.logFile = join(dir, 'node.log')
  }

  get sqlPort (): number { return this.ports.sql }
  get running (): boolean { return this.child !== undefined && !exited(this.child) }
  get socket (): string { return join(this.dir, 'mysqld.sock') }

  /** Data dir by mariadb-install-db, owned by mysql; the rendered config next to it. */
  async install (template: string, cluster: string): Promise<void> {
    mkdirSync(join(this.dir, 'tmp'), { recursive: true })
    writeFileSync(join(this.dir, 'my.cnf'), render(template, {
      DIR: this.dir,
      SQL_PORT: this.ports.sql,
      NODE_NAME: this.name,
      GMCAST_PORT: this.ports.gmcast,
      IST_PORT: this.ports.ist,
      SST_PORT: this.ports.sst,
      CLUSTER: cluster
    }))
    const { uid, gid } = mysqlUser()
    chownTree(this.dir, uid, gid)
    await execFileAsync('mariadb-install-db', [
      '--no-defaults', `--datadir=${join(this.dir, 'data')}`, '--user=mysql',
      // Own tmpdir: parallel installs sharing /tmp collide on temporary table names.
      `--tmpdir=${join(this.dir, 'tmp')}`, '--auth-root-authentication-method=normal', '--skip-test-db'
    ])
  }

  async start (): Promise<void> {
    // With no other node up, there is no cluster to join: this node starts a new one.
    await this.launch(!this.peers().some((node) => node !== this && node.running))
  }

  async launch (bootstrap: boolean): Promise<void> {
    if (this.running) return
    const started = Date.now()
    if (bootstrap) this.markSafeToBootstrap()
    const position = await this.recoverPosition()
    const fd = openSync(this.logFile, 'a')
    const child = spawn(MARIADBD as string, [
      `--defaults-file=${join(this.dir, 'my.cnf')}`, '--user=mysql',
      ...(bootstrap ? ['--wsrep-new-cluster'] : []),
      ...(position ? [`--wsrep-start-position=${position}`] : [])
    ], { stdio: ['ignore', fd, fd], detached: true })
    closeSync(fd)
    this.child = track(child)
    try {
      await this.waitSynced(child)
    } catch (error) {
      signalGroup(child, 'SIGKILL')
      throw new Error(`${this.name}: ${(error as Error).message}\n--- last lines of ${this.logFile} ---\n${tail(this.logFile)}`)
    }
    this.log(`${this.name} Synced on port ${this.sqlPort} after ${Date.now() - started} ms${bootstrap ? ' (bootstrap)' : ''}`)
  }

  /** A node that crashed has safe_to_bootstrap: 0; only relevant when it starts a new cluster. */
  private markSafeToBootstrap (): void {
    const file = join(this.dir, 'data', 'grastate.dat')
    if (!existsSync(file)) return
    writeFileSync(file, readFileSync(file, 'utf8').replace(/safe_to_bootstrap:\s*0/, 'safe_to_bootstrap: 1'))
  }

  /**
   * After a crash (kill -9) grastate.dat says seqno: -1: started as is, the node does not know
   * its position and asks for a full SST. `mariadbd --wsrep-recover` reads the position from
   * InnoDB (what mysqld_safe / galera_recovery do); passed as --wsrep-start-position, the node
   * rejoins by IST. An orderly shutdown writes the seqno itself: nothing to do then.
   */
  private async recoverPosition (): Promise<string | undefined> {
    const file = join(this.dir, 'data', 'grastate.dat')
    if (!existsSync(file) || !/seqno:\s*-1\b/.test(readFileSync(file, 'utf8'))) return undefined
    const started = Date.now()
    const { stderr } = await execFileAsync(MARIADBD as string, [
      `--defaults-file=${join(this.dir, 'my.cnf')}`, '--user=mysql', '--wsrep-recover'
    ])
    const position = stderr.match(/WSREP: Recovered position: (\S+:-?\d+)/)?.[1]
    this.log(`${this.name} recovered position ${position ?? '(none)'} in ${Date.now() - started} ms`)
    return position?.endsWith(':-1') ? undefined : position
  }

  private async waitSynced (child: ChildProcess, timeoutMs = 180000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline) {
      if (exited(child)) throw new Error(`mariadbd exited (${child.exitCode ?? child.signalCode})`)
      const status = await this.status().catch(() => undefined)
      if (status?.wsrep_local_state_comment === 'Synced' && status.wsrep_ready === 'ON') return
      await sleep(200)
    }
    throw new Error(`not Synced within ${timeoutMs / 1000} s`)
  }

  /** wsrep_* status over the unix socket (root@localhost works before any TCP user exists). */
  async status (): Promise<Status> {
    const rows = await this.query<RowDataPacket[]>("SHOW GLOBAL STATUS LIKE 'wsrep%'")
    return Object.fromEntries(rows.map((row) => [String(row.Variable_name), String(row.Value)]))
  }

  async query<T> (sql: string): Promise<T> {
    const connection = await createConnection({ socketPath: this.socket, user: 'root', connectTimeout: 2000 })
    try {
      const [result] = await connection.query(sql)
      return result as T
    } finally {
      await connection.end().catch(() => undefined)
    }
  }

  async kill (): Promise<void> {
    const child = this.child
    if (!child) return
    signalGroup(child, 'SIGKILL')
    await waitExit(child)
  }

  async stop (): Promise<void> {
    const child = this.child
    if (!child || exited(child)) return
    child.kill('SIGTERM')
    const timer = setTimeout(() => signalGroup(child, 'SIGKILL'), 60000)
    await waitExit(child)
    clearTimeout(timer)
    signalGroup(child, 'SIGKILL') // leftovers of its group, if any
  }
}

function mysqlUser (): { uid: number, gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('mysql:'))
  const [, , uid, gid] = line?.split(':') ?? []
  if (uid === undefined || gid === undefined) throw new Error('there is no `mysql` OS user (apt-get install -y mariadb-server)')
  return { uid: Number(uid), gid: Number(gid) }
}

function checkPrerequisites (): void {
  if (!MARIADBD) throw new Error('mariadbd is not installed: apt-get install -y mariadb-server')
  if (!existsSync(GALERA)) throw new Error(`${GALERA} is missing: apt-get install -y galera-4`)
  if (userInfo().uid !== 0) throw new Error('the Galera launcher must run as root (it starts the nodes as the mysql user)')
}

async function waitClusterSize (nodes: Node[], size: number, timeoutMs = 30000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const statuses = await Promise.all(nodes.map((node) => node.status().catch(() => undefined)))
    if (statuses.every((s) => s?.wsrep_cluster_size === String(size) && s.wsrep_local_state_comment === 'Synced')) return
    await sleep(200)
  }
  throw new Error(`the cluster did not reach ${size} Synced nodes within ${timeoutMs / 1000} s`)
}

export async function startGaleraCluster (options: { nodes?: number, log?: (line: string) => void } = {}): Promise<GaleraCluster> {
  checkPrerequisites()
  const count = options.nodes ?? 3
  const log = options.log ?? (() => {})
  const started = Date.now()
  const root = makeTempDir('galera-')
  chmodSync(root, 0o755) // mkdtemp makes it 0700 and the nodes run as mysql
  const ports = await freePorts(count * 4)
  const nodes: Node[] = []
  for (let i = 0; i < count; i++) {
    const [sql, gmcast, ist, sst] = ports.slice(i * 4, i * 4 + 4) as [number, number, number, number]
    nodes.push(new Node(`node${i + 1}`, join(root, `node${i + 1}`), { sql, gmcast, ist, sst }, () => nodes, log))
  }
  const destroy = async (): Promise<void> => {
    await Promise.all(nodes.map((node) => node.kill()))
    removeTempDir(root)
  }
  try {
    const template = readFileSync(join(DEPLOY_DIR, 'galera-node.cnf'), 'utf8')
    const cluster = nodes.map((node) => `127.0.0.1:${node.ports.gmcast}`).join(',')
    await Promise.all(nodes.map((node) => node.install(template, cluster)))
    log(`installed ${count} data dirs in ${root} after ${Date.now() - started} ms`)
    await nodes[0]?.launch(true)
    // One joiner at a time: a donor serves one rsync SST at a time.
    for (const node of nodes.slice(1)) await node.launch(false)
    await waitClusterSize(nodes, count)
    // Replicates to every node (TOI): the tests connect as root over TCP.
    await nodes[0]?.query("CREATE USER IF NOT EXISTS root@'127.0.0.1'")
    await nodes[0]?.query("GRANT ALL ON *.* TO root@'127.0.0.1' WITH GRANT OPTION")
    log(`cluster of ${count} Synced after ${Date.now() - started} ms`)
  } catch (error) {
    await destroy()
    throw error
  }
  return {
    nodes,
    hosts: nodes.map((node) => `127.0.0.1:${node.sqlPort}`).join(','),
    rootUrl: (i) => {
      const node = nodes[i]
      if (!node) throw new RangeError(`no node ${i} (0-based, ${count} nodes)`)
      return `mysql://root@127.0.0.1:${node.sqlPort}`
    },
    destroy
  }
}
