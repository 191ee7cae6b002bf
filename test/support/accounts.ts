import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { hashSync } from '@node-rs/bcrypt'
import type { Test } from 'tap'
import type { Client, HttpResponse } from '../helper.js'

export const HTPASSWD = ['/usr/bin/htpasswd', '/usr/sbin/htpasswd'].find((path) => existsSync(path))

/**
 * An htpasswd file with these users, written by Apache's own `htpasswd -B` when it is installed
 * (CI installs apache2-utils), so the tests prove its output works as is. A low cost keeps tests fast.
 */
export function writeUsersFile (t: Test, users: Record<string, string>, cost = 5): string {
  const dir = mkdtempSync(join(tmpdir(), 'users-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const path = join(dir, 'users.htpasswd')
  writeFileSync(path, '')
  for (const [name, password] of Object.entries(users)) {
    if (HTPASSWD) execFileSync(HTPASSWD, ['-B', '-C', String(cost), '-b', path, name, password], { stdio: 'ignore' })
    else writeFileSync(path, `${name}:${hashSync(password, cost)}\n`, { flag: 'a' })
  }
  return path
}

/**
 * Users user0 … user{count - 1}, all with one password: one hash, written as `writeUsersFile`
 * writes it, on every line, so that many users at a high cost take one hashing.
 */
export function writeManyUsers (t: Test, count: number, password: string, cost: number): string {
  const path = writeUsersFile(t, { user0: password }, cost)
  const hash = readFileSync(path, 'utf8').trim().split(':')[1] as string
  writeFileSync(path, Array.from({ length: count }, (_, i) => `user${i}:${hash}\n`).join(''))
  return path
}

export function loginAs (client: Client, username: string, password: string, headers: Record<string, string> = {}): Promise<HttpResponse> {
  return client.request('/session/login', { method: 'POST', body: { username, password }, headers })
}
