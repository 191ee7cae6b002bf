// What `npm run cluster` starts and the cluster test runs against: a Galera cluster, app instances
// on it, and HAProxy in front of them, all on 127.0.0.1, all stopped and removed by stop().
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { appendFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { hash } from '@node-rs/bcrypt'
import { createConnection } from 'mysql2/promise'
import { httpStatus, makeTempDir, removeTempDir, signalGroup, startGaleraCluster, track, waitExit, type GaleraCluster } from './galera.js'
import { startHaproxy, type Service } from './haproxy.js'
import { freePort } from '../../test/support/private-mariadb.js'

const serverEntry = new URL('../../src/server.ts', import.meta.url).pathname
const tsxLoader = import.meta.resolve('tsx')

export const DATABASE = 'sessions'
export const DATABASE_USER = 'sessions'

export interface AppInstance {
  readonly name: string
  readonly url: string
  /** What it wrote to stdout (pino JSON lines), across restarts, when the stack keeps it (keepOutput). */
  readonly output: string[]
  /** Where its stdout and stderr go otherwise. */
  readonly logFile: string
  /** SIGKILL, as a crash. */
  kill: () => Promise<void>
  /** Starts it (again) and resolves once it listens. */
  start: () => Promise<void>
  stop: () => Promise<void>
}

export interface ClusterStack {
  /** HAProxy's URL: what a browser opens. */
  readonly url: string
  readonly cluster: GaleraCluster
  readonly instances: AppInstance[]
  /** The accounts' names (AUTH_USERS_FILE) and their one password. */
  readonly accounts: { names: string[], password: string }
  stop: () => Promise<void>
}

export interface StackOptions {
  instances?: number
  /** HAProxy's port (default: a free one). */
  port?: number
  /** Keep each instance's stdout in memory (tests read it); otherwise it goes to a file in the stack's directory. */
  keepOutput?: boolean
  /** Accounts to create, all with one password (default: demo). */
  users?: string[]
  /** Variables for every instance, over the stack's own. */
  env?: Record<string, string>
  log?: (line: string) => void
}

/**
 * The cluster, a database and a least-privilege user for the app (created on one node, replicated
 * to all), the instances, HAProxy. Instance i lists the nodes starting from node i, so each writes
 * through a node of its own: what one instance writes, another reads through another node.
 */
export async function startClusterStack (options: StackOptions = {}): Promise<ClusterStack> {
  const log = options.log ?? (() => {})
  const dir = makeTempDir('session-cluster-')
  const started: Array<{ stop: () => Promise<void> }> = []
  let stopped: Promise<void> | undefined
  // Once, whoever asks first (Ctrl-C, a test's teardown).
  const stop = () => {
    stopped ??= (async () => {
      for (const part of started.reverse()) await part.stop().catch(() => {})
      removeTempDir(dir)
    })()
    return stopped
  }
  try {
    log('starting 3 Galera nodes')
    const cluster = await startGaleraCluster({ log })
    started.push({ stop: () => cluster.destroy() })

    const password = randomBytes(18).toString('base64url')
    const admin = await createConnection(cluster.rootUrl(0))
    // Only what the store does: its rows, and creating or upgrading its two tables.
    await admin.query(`CREATE DATABASE IF NOT EXISTS ${DATABASE}`)
    await admin.query(`CREATE USER IF NOT EXISTS '${DATABASE_USER}'@'127.0.0.1' IDENTIFIED BY ?`, [password])
    await admin.query(`GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER ON ${DATABASE}.* TO '${DATABASE_USER}'@'127.0.0.1'`)
    await admin.end()

    const accounts = { names: options.users ?? ['demo'], password: randomBytes(9).toString('base64url') }
    const usersFile = join(dir, 'users.htpasswd')
    const passwordHash = await hash(accounts.password, 10)
    writeFileSync(usersFile, accounts.names.map((name) => `${name}:${passwordHash}\n`).join(''))

    const ports = cluster.nodes.map((node) => node.sqlPort)
    const secret = randomBytes(36).toString('base64url')
    const instances = await Promise.all(Array.from({ length: options.instances ?? 3 }, async (_, index) => {
      const hosts = [...ports.slice(index % ports.length), ...ports.slice(0, index % ports.length)].map((port) => `127.0.0.1:${port}`)
      const port = await freePort()
      return appInstance(`app${index + 1}`, port, join(dir, `app${index + 1}.log`), options.keepOutput === true, {
        NODE_ENV: 'production',
        HOST: '127.0.0.1',
        PORT: String(port),
        // One proxy in front: it writes X-Forwarded-For and X-Forwarded-Proto.
        TRUST_PROXY: '127.0.0.1',
        SESSION_SECRET: secret,
        SESSION_HOST: hosts.join(','),
        SESSION_USER: DATABASE_USER,
        SESSION_PASSWORD: password,
        SESSION_DATABASE: DATABASE,
        // Plain HTTP on loopback; behind TLS termination, leave it at its default (true).
        SESSION_COOKIE_SECURE: 'false',
        AUTH_USERS_FILE: usersFile,
        ...options.env
      })
    }))
    started.push(...instances)
    log(`starting ${instances.length} app instances`)
    await Promise.all(instances.map((instance) => instance.start()))

    const proxy: Service = await startHaproxy({
      config: 'app',
      port: options.port,
      backends: instances.map((instance) => ({ host: '127.0.0.1', port: Number(new URL(instance.url).port) }))
    })
    started.push(proxy)
    return { url: `http://127.0.0.1:${proxy.port}`, cluster, instances, accounts, stop }
  } catch (error) {
    await stop()
    throw error
  }
}

function appInstance (name: string, port: number, logFile: string, keepOutput: boolean, env: Record<string, string>): AppInstance {
  let child: ChildProcess | undefined
  const output: string[] = []
  const ended = async (signal: NodeJS.Signals) => {
    if (!child || child.exitCode !== null || child.signalCode !== null) return
    const exit = waitExit(child)
    signalGroup(child, signal)
    await exit
  }
  return {
    name,
    url: `http://127.0.0.1:${port}`,
    output,
    logFile,
    kill: () => ended('SIGKILL'),
    stop: () => ended('SIGTERM'),
    start: async () => {
      const started = track(spawn(process.execPath, ['--import', tsxLoader, serverEntry], {
        env: { PATH: process.env.PATH, ...env },
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe']
      }))
      child = started
      let pending = ''
      let stderr = ''
      started.stdout?.on('data', (chunk: Buffer) => {
        if (!keepOutput) return appendFileSync(logFile, chunk)
        const lines = (pending + chunk.toString()).split('\n')
        pending = lines.pop() ?? ''
        output.push(...lines)
      })
      started.stderr?.on('data', (chunk: Buffer) => {
        appendFileSync(logFile, chunk)
        // The end of it, for the error if it does not start.
        stderr = (stderr + chunk.toString()).slice(-2000)
      })
      // Up when it answers, whatever its LOG_LEVEL prints.
      const deadline = Date.now() + 60000
      while ((await httpStatus(`http://127.0.0.1:${port}/health/live`, 1000)) !== 200) {
        if (started.exitCode !== null || started.signalCode !== null) throw new Error(`${name} exited with ${started.exitCode ?? started.signalCode} before listening: ${stderr.slice(-2000)}`)
        if (Date.now() > deadline) {
          signalGroup(started, 'SIGKILL')
          throw new Error(`${name} did not answer within 60 s: ${stderr.slice(-2000)}`)
        }
        await sleep(100)
      }
    }
  }
}
