import { randomBytes } from 'node:crypto'
import { request as sendRequest, type Agent, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { createConnection, createPool, type Pool, type RowDataPacket } from 'mysql2/promise'
import type { Test } from 'tap'
import { buildApp, type BuildAppOptions } from '../src/app.js'
import { PrivateMariaDb } from './support/private-mariadb.js'

export type Env = Record<string, string | undefined>

/** buildApp's options other than the variables (a logger, an authenticator, consumer routes). */
export type AppOptions = Omit<BuildAppOptions, 'env'>

/** The server npm test found (see scripts/test.ts); a direct `npx tap` falls back to the local one. */
export const databaseUrl = new URL(process.env.TEST_DATABASE_URL ?? 'mysql://root@127.0.0.1:3306')

export function serverEnv (url: URL = databaseUrl): Env {
  return {
    SESSION_HOST: url.hostname,
    SESSION_PORT: url.port || '3306',
    SESSION_USER: decodeURIComponent(url.username),
    SESSION_PASSWORD: decodeURIComponent(url.password)
  }
}

/** Variables every test starts from: quiet, a fixed secret, plain-HTTP cookies unless a test says otherwise. */
export const baseEnv: Env = {
  NODE_ENV: 'test',
  LOG_LEVEL: 'silent',
  SESSION_SECRET: 'test-secret-that-is-long-enough-for-production-0123456789',
  SESSION_COOKIE_SECURE: 'false'
}

export interface TestDatabase {
  name: string
  /** SESSION_* variables that point at it. */
  env: Env
  /** A pool for the test's own checks, closed at teardown. */
  pool: Pool
}

/** A database of the test's own, dropped at teardown. */
export async function createTestDatabase (t: Test): Promise<TestDatabase> {
  const name = `t_${randomBytes(6).toString('hex')}`
  const admin = createPool({ ...connectionOf(databaseUrl), connectionLimit: 4 })
  await admin.query(`CREATE DATABASE \`${name}\``)
  const pool = createPool({ ...connectionOf(databaseUrl), database: name, connectionLimit: 4 })
  t.teardown(async () => {
    await pool.end()
    await admin.query(`DROP DATABASE IF EXISTS \`${name}\``)
    await admin.end()
  })
  return { name, env: { ...serverEnv(), SESSION_DATABASE: name }, pool }
}

function connectionOf (url: URL) {
  return {
    host: url.hostname,
    port: Number(url.port || 3306),
    user: decodeURIComponent(url.username),
    password: decodeURIComponent(url.password)
  }
}

/** An app built on the given variables (on top of `baseEnv`), ready, closed at teardown. */
export async function build (t: Test, env: Env = {}, options: AppOptions = {}): Promise<FastifyInstance> {
  const app = await buildApp({ ...options, env: { ...baseEnv, ...env } })
  t.teardown(() => app.close())
  await app.ready()
  return app
}

/** An app on a fresh database of its own. */
export async function buildWithDatabase (t: Test, env: Env = {}, options: AppOptions = {}): Promise<{ app: FastifyInstance, db: TestDatabase }> {
  const db = await createTestDatabase(t)
  const app = await build(t, { ...db.env, ...env }, options)
  return { app, db }
}

/** An hour from now, in the seconds the `expires` column holds. */
export const inAnHour = (): number => Math.floor(Date.now() / 1000) + 3600

/**
 * A row as express-mysql-session (or a hand edit) writes it: its three columns, the user key left
 * NULL. An object is stored as its JSON; a string or null exactly as given.
 */
export async function insertSessionRow (db: TestDatabase, id: string, data: object | string | null, expires = inAnHour()): Promise<void> {
  const text = data === null || typeof data === 'string' ? data : JSON.stringify(data)
  await db.pool.query('INSERT INTO sessions (session_id, expires, data) VALUES (?, ?, ?)', [id, expires, text])
}

/** express-mysql-session's table with a JSON `data` column, the variant its README documents. */
export async function createJsonDataTable (db: TestDatabase, table = 'sessions'): Promise<void> {
  await db.pool.query(`CREATE TABLE \`${table}\` (
    session_id varchar(128) COLLATE utf8mb4_bin NOT NULL,
    expires int(11) unsigned NOT NULL,
    data JSON,
    PRIMARY KEY (session_id)
  ) ENGINE=InnoDB`)
}

export async function countRows (db: TestDatabase, table = 'sessions'): Promise<number> {
  const [rows] = await db.pool.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM \`${table}\``)
  return Number(rows[0]?.n)
}

/** `name=value` of the session cookie in a Set-Cookie header, ready to send back. */
export function sessionCookie (setCookie: string | string[] | undefined, name = 'sid'): string | undefined {
  const all = Array.isArray(setCookie) ? setCookie : setCookie ? [setCookie] : []
  const found = all.find((cookie) => cookie.startsWith(`${name}=`))
  return found?.split(';')[0]
}

export interface HttpResponse {
  status: number
  headers: IncomingHttpHeaders
  body: string
  json: () => any
}

export interface RequestOptions {
  method?: string
  headers?: Record<string, string>
  body?: unknown
  /** A keep-alive agent for many requests in a row; by default each request has its own socket. */
  agent?: Agent
  /**
   * The request target exactly as sent, in place of the URL's path: parsing a URL would resolve
   * `.` and `..`, turn `\` into `/` and so on, before the server could see them.
   */
  target?: string
}

/**
 * A real HTTP request over a socket. Session routes are tested this way: Express (under
 * @fastify/express) swaps the response prototype, so `inject()` loses their bodies
 * (fastify/fastify-express#54), and cookies, proxies and slow clients need real sockets anyway.
 */
export function httpRequest (url: string, options: RequestOptions = {}): Promise<HttpResponse> {
  const headers = { ...options.headers }
  let payload: string | undefined
  if (options.body !== undefined) {
    payload = typeof options.body === 'string' ? options.body : JSON.stringify(options.body)
    headers['content-type'] ??= 'application/json'
    // Node sends a GET body without a length, which the server rightly refuses as a parse error.
    headers['content-length'] ??= String(Buffer.byteLength(payload))
  }
  return new Promise((resolve, reject) => {
    const target = options.target === undefined ? {} : { path: options.target }
    const req = sendRequest(url, { method: options.method ?? 'GET', headers, agent: options.agent ?? false, ...target }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { text += chunk })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text, json: () => JSON.parse(text) }))
    })
    req.on('error', reject)
    req.end(payload)
  })
}

/** A browser-like client: keeps the session cookie it is given and sends it back. */
export class Client {
  cookie: string | undefined

  constructor (readonly base: string, readonly cookieName = 'sid') {}

  async request (path: string, options: RequestOptions = {}): Promise<HttpResponse> {
    const headers = { ...options.headers }
    if (this.cookie && headers.cookie === undefined) headers.cookie = this.cookie
    const res = await httpRequest(this.base + path, { ...options, headers })
    const next = sessionCookie(res.headers['set-cookie'], this.cookieName)
    if (next !== undefined) this.cookie = /^[^=]+=(;|$)/.test(next) ? undefined : next
    return res
  }
}

/** A client of another server (another instance behind the same balancer) that sends the cookie `client` holds. */
export function sameBrowserOn (base: string, client: Client): Client {
  const other = new Client(base)
  other.cookie = client.cookie
  return other
}

/** Listens on a free loopback port; returns the base URL. */
export async function listen (app: FastifyInstance, host = '127.0.0.1'): Promise<string> {
  await app.listen({ host, port: 0 })
  const address = app.server.address() as AddressInfo
  return `http://${host}:${address.port}`
}

/** An app on its own database, listening on loopback, with a client for it. */
export async function serve (t: Test, env: Env = {}, options: AppOptions = {}): Promise<{ app: FastifyInstance, db: TestDatabase, base: string, client: Client }> {
  const { app, db } = await buildWithDatabase(t, env, options)
  const base = await listen(app)
  return { app, db, base, client: new Client(base, env.SESSION_COOKIE_NAME) }
}

export interface PrivateDatabase {
  server: PrivateMariaDb
  /** SESSION_* variables that point an app at its `sessions` schema. */
  env: Env
  /** Root connections to that schema, for the test's own checks, locks and counters. */
  admin: Pool
}

/**
 * A MariaDB server of the test's own with an empty `sessions` schema, for tests that kill, lock or
 * count queries on the database (the shared server is used by test files running in parallel).
 * Destroyed at teardown, after the apps built later are closed (tap runs teardowns last-in first).
 */
export async function privateDatabase (t: Test, port?: number): Promise<PrivateDatabase> {
  const server = await PrivateMariaDb.create(port)
  t.teardown(() => server.destroy())
  const setup = await createConnection({ host: '127.0.0.1', port: server.port, user: 'root' })
  await setup.query('CREATE DATABASE sessions')
  await setup.end()
  const admin = createPool({ host: '127.0.0.1', port: server.port, user: 'root', database: 'sessions', connectionLimit: 4 })
  t.teardown(() => admin.end())
  return {
    server,
    env: { SESSION_HOST: '127.0.0.1', SESSION_PORT: String(server.port), SESSION_USER: 'root', SESSION_DATABASE: 'sessions' },
    admin
  }
}
