import { spawn, execFile, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { createConnection } from 'mysql2/promise'

const execFileAsync = promisify(execFile)

export const MARIADBD = ['/usr/sbin/mariadbd', '/usr/bin/mariadbd'].find((path) => existsSync(path))

/**
 * A throwaway MariaDB server of our own (temp data directory, free port, root without password),
 * for the suite when no shared database answers and for tests that must stop, kill or stall the
 * database without touching anyone else's.
 */
export class PrivateMariaDb {
  readonly port: number
  private readonly dir: string
  private child: ChildProcess | undefined

  private readonly options: string[]

  private constructor (port: number, dir: string, options: string[]) {
    this.port = port
    this.dir = dir
    this.options = options
  }

  /** `options` are extra mariadbd flags (the benchmark gives it a bigger buffer pool). */
  static async create (port?: number, options: string[] = []): Promise<PrivateMariaDb> {
    if (!MARIADBD) throw new Error('mariadbd is not installed (apt-get install -y mariadb-server)')
    const dir = mkdtempSync(join(tmpdir(), 'private-mariadb-'))
    await execFileAsync('mariadb-install-db', [
      '--no-defaults', `--datadir=${join(dir, 'data')}`, '--user=root',
      '--auth-root-authentication-method=normal', '--skip-test-db'
    ])
    const server = new PrivateMariaDb(port ?? await freePort(), dir, options)
    await server.start()
    return server
  }

  get url (): string {
    return `mysql://root@127.0.0.1:${this.port}`
  }

  async start (): Promise<void> {
    const child = spawn(MARIADBD as string, [
      '--no-defaults', `--datadir=${join(this.dir, 'data')}`, '--user=root',
      `--port=${this.port}`, '--bind-address=127.0.0.1', `--socket=${join(this.dir, 'mysqld.sock')}`,
      `--pid-file=${join(this.dir, 'mysqld.pid')}`, '--skip-name-resolve',
      '--innodb-buffer-pool-size=64M', '--max-connections=500', ...this.options
    ], { stdio: 'ignore' })
    this.child = child
    const started = Date.now()
    while (Date.now() - started < 60000) {
      if (child.exitCode !== null) throw new Error(`mariadbd exited with ${child.exitCode}`)
      try {
        const connection = await createConnection({ host: '127.0.0.1', port: this.port, user: 'root', connectTimeout: 1000 })
        await connection.end()
        return
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 200))
      }
    }
    throw new Error('mariadbd did not answer within 60 s')
  }

  /** Stops the server: `SIGKILL` for a crash, `SIGTERM` for an orderly shutdown. */
  async stop (signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.child
    if (!child || child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill(signal)
    await exited
    this.child = undefined
  }

  async destroy (): Promise<void> {
    await this.stop('SIGKILL')
    rmSync(this.dir, { recursive: true, force: true })
  }
}

export function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0))
    })
  })
}
