import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import bcrypt from 'bcryptjs'
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
    else writeFileSync(path, `${name}:${bcrypt.hashSync(password, cost)}\n`, { flag: 'a' })
  }
  return path
}

export function loginAs (client: Client, username: string, password: string, headers: Record<string, string> = {}): Promise<HttpResponse> {
  return client.request('/session/login', { method: 'POST', body: { username, password }, headers })
}
