import { readFileSync, statSync } from 'node:fs'
import { hashSync, verify } from '@node-rs/bcrypt'
import type { FastifyBaseLogger } from 'fastify'
import { ConfigError } from '../config/config.js'
import type { SessionUser } from '../session/session-data.js'
import type { Authenticator } from './authenticator.js'

/** `htpasswd -B` writes $2y$; bcrypt libraries write $2a$ or $2b$. Other schemes are refused. */
const BCRYPT_HASH = /^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$/
export const USER_NAME = /^[A-Za-z0-9._@-]{1,64}$/
/** bcrypt reads this many bytes of a password and ignores the rest. */
export const BCRYPT_MAX_BYTES = 72
// The cost of unknown users when the file has none to copy.
const EMPTY_FILE_COST = 10

const costOf = (hash: string) => Number(BCRYPT_HASH.exec(hash)?.[1] ?? EMPTY_FILE_COST)

// A hash no password matches, at any cost: a real salt and checksum under another cost field.
// bcrypt's time depends on the cost alone, and the checksum is still checked, so it never matches.
const DECOY = hashSync('a decoy that matches nothing', 4)
const decoyAt = (cost: number) => DECOY.replace(/^(\$2[aby]\$)\d\d\$/, `$1${String(cost).padStart(2, '0')}$`)

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
  // The highest cost in the file: every check, of any user or none, takes that long.
  private maxCost: number

  constructor (private readonly path: string, private readonly log: FastifyBaseLogger) {
    this.loadedMtimeMs = statSync(path).mtimeMs
    this.users = parseHtpasswd(readFileSync(path, 'utf8'), path)
    this.maxCost = highestCost(this.users)
  }

  /**
   * Costs the same time for every username, known or not: an unknown user is checked against a
   * decoy at the file's highest cost, and a user whose hash is cheaper is padded up to it with
   * decoys at costs c, c+1 … max-1 (t(c) + t(c) + … + t(max-1) = t(max), as each cost doubles the
   * time). A decoy at the highest cost alone would let a cost-5 user (htpasswd -B) be told from a
   * stranger as surely as a decoy at cost 5 let the cost-12 users (npm run users) be; the price is
   * that every login costs the server what the dearest hash in the file does.
   */
  async verify (username: string, password: string): Promise<SessionUser | null> {
    this.reloadIfChanged()
    // A longer password would match on its first 72 bytes alone: it matches nothing, and is
    // checked as an unknown user's is, so that its answer and its time are any failure's.
    const hash = Buffer.byteLength(password, 'utf8') > BCRYPT_MAX_BYTES ? undefined : this.users.get(username)
    // Native bcrypt on libuv's threadpool: the event loop keeps serving while it hashes.
    const matches = await verify(password, hash ?? decoyAt(this.maxCost))
    for (let cost = hash === undefined ? this.maxCost : costOf(hash); cost < this.maxCost; cost++) {
      await verify(password, decoyAt(cost))
    }
    return hash !== undefined && matches ? { name: username } : null
  }

  private reloadIfChanged (): void {
    try {
      const mtimeMs = statSync(this.path).mtimeMs
      if (mtimeMs === this.loadedMtimeMs) return
      this.users = parseHtpasswd(readFileSync(this.path, 'utf8'), this.path)
      this.maxCost = highestCost(this.users)
      this.loadedMtimeMs = mtimeMs
    } catch (error) {
      this.log.error({ err: error }, 'could not reload AUTH_USERS_FILE; keeping the users loaded before')
    }
  }
}

function highestCost (users: Map<string, string>): number {
  return users.size === 0 ? EMPTY_FILE_COST : Math.max(...[...users.values()].map(costOf))
}
