import { readFileSync, statSync } from 'node:fs'
import { hashSync, verify } from '@node-rs/bcrypt'
import type { FastifyBaseLogger } from 'fastify'
import { ConfigError } from '../config/config.js'
import type { SessionUser } from '../session/session-data.js'
import type { Authenticator } from './authenticator.js'

/** `htpasswd -B` writes $2y$; bcrypt libraries write $2a$ or $2b$. Other schemes are refused. */
const BCRYPT_HASH = /^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$/
export const USER_NAME = /^[A-Za-z0-9._@-]{1,64}$/

/** Parses an htpasswd file's text into name → hash; a malformed line throws, naming its number. */
export function parseHtpasswd (text: string, source: string): Map<string, string> {
  const users = new Map<string, string>()
  text.split(/\r?\n/).forEach((line, index) => {
    if (line.trim() === '' || line.startsWith('#')) return
    const separator = line.indexOf(':')
    const name = line.slice(0, separator)
    const hash = line.slice(separator + 1)
    if (separator < 0 || !USER_NAME.test(name) || !BCRYPT_HASH.test(hash)) {
      throw new ConfigError(`AUTH_USERS_FILE ${source} line ${index + 1} is not name:bcrypt-hash (htpasswd -B writes such lines)`)
    }
    users.set(name, hash)
  })
  return users
}

/** Renders name → hash back to the file format. */
export function formatHtpasswd (users: Map<string, string>): string {
  return [...users].map(([name, hash]) => `${name}:${hash}\n`).join('')
}

/**
 * The built-in authenticator: an htpasswd file of bcrypt hashes. The file is read at start (a bad
 * line stops the server) and read again when it changes, so `npm run users -- add` takes effect
 * without a restart; a bad edit then keeps the previous users and logs an error.
 */
export class HtpasswdAuthenticator implements Authenticator {
  private users: Map<string, string>
  private loadedMtimeMs: number
  // Compared against when the user is unknown, so that case costs what a wrong password costs.
  private readonly decoyHash: string

  constructor (private readonly path: string, private readonly log: FastifyBaseLogger) {
    this.loadedMtimeMs = statSync(path).mtimeMs
    this.users = parseHtpasswd(readFileSync(path, 'utf8'), path)
    const cost = Number(BCRYPT_HASH.exec([...this.users.values()][0] ?? '')?.[1] ?? 10)
    this.decoyHash = hashSync('decoy password that matches nothing', cost)
  }

  async verify (username: string, password: string): Promise<SessionUser | null> {
    this.reloadIfChanged()
    const hash = this.users.get(username)
    // Native bcrypt on libuv's threadpool: the event loop keeps serving while it hashes.
    const matches = await verify(password, hash ?? this.decoyHash)
    return hash !== undefined && matches ? { name: username } : null
  }

  private reloadIfChanged (): void {
    try {
      const mtimeMs = statSync(this.path).mtimeMs
      if (mtimeMs === this.loadedMtimeMs) return
      this.users = parseHtpasswd(readFileSync(this.path, 'utf8'), this.path)
      this.loadedMtimeMs = mtimeMs
    } catch (error) {
      this.log.error({ err: error }, 'could not reload AUTH_USERS_FILE; keeping the users loaded before')
    }
  }
}
