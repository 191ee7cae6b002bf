import { randomBytes } from 'node:crypto'
import { createConnection } from 'mysql2/promise'
import type { Test } from 'tap'
import { databaseUrl } from '../helper.js'

/** Root's connection settings on the shared test server (TEST_DATABASE_URL, else 127.0.0.1:3306). */
export function adminSettings () {
  return {
    host: databaseUrl.hostname,
    port: Number(databaseUrl.port || 3306),
    user: decodeURIComponent(databaseUrl.username),
    password: decodeURIComponent(databaseUrl.password)
  }
}

/** Runs statements as root on the shared test server. */
export async function asAdmin (...statements: string[]): Promise<void> {
  const admin = await createConnection(adminSettings())
  try {
    for (const sql of statements) await admin.query(sql)
  } finally {
    await admin.end()
  }
}

export interface TestUser {
  name: string
  password: string
  /** `'name'@'%'`, for GRANT statements. */
  account: string
}

/**
 * A database user of the test's own (any client address), with a random password and the given
 * GRANT statements (`%ACCOUNT%` stands for the account); dropped at teardown.
 */
export async function createTestUser (t: Test, ...grants: string[]): Promise<TestUser> {
  const name = `u_${randomBytes(5).toString('hex')}`
  const password = `pw-${randomBytes(12).toString('base64url')}`
  const account = `'${name}'@'%'`
  await asAdmin(`CREATE USER ${account} IDENTIFIED BY '${password}'`, ...grants.map((grant) => grant.replaceAll('%ACCOUNT%', account)))
  t.teardown(() => asAdmin(`DROP USER IF EXISTS ${account}`))
  return { name, password, account }
}
