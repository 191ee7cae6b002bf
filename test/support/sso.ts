import type { FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import { startDevProvider, type DevProvider, type DevProviderOptions } from '../../scripts/sso/dev-provider.js'
import { buildApp } from '../../src/app.js'
import { baseEnv, createTestDatabase, type AppOptions, type Env, type TestDatabase } from '../helper.js'
import { freePort } from './private-mariadb.js'

export interface SsoInstance {
  app: FastifyInstance
  /** Its PUBLIC_URL (http://127.0.0.1:port), which it listens on. */
  base: string
}

export interface SsoStack {
  provider: DevProvider
  db: TestDatabase
  instances: SsoInstance[]
  /** The variables the instances were built with (each with its own PUBLIC_URL). */
  env: Env
}

export interface SsoStackOptions {
  /** App instances on one database, each with its own PUBLIC_URL; the provider's back-channel logout goes to the first. */
  instances?: number
  env?: Env
  app?: AppOptions
  provider?: Omit<DevProviderOptions, 'appUrls'>
}

/** The variables that point an app at the dev provider. */
export function ssoEnv (provider: Pick<DevProvider, 'issuer' | 'clientId' | 'clientSecret'>, publicUrl: string): Env {
  return { PUBLIC_URL: publicUrl, OIDC_ISSUER: provider.issuer, OIDC_CLIENT_ID: provider.clientId, OIDC_CLIENT_SECRET: provider.clientSecret }
}

/**
 * The dev provider and app instances that log in through it, on a database of their own, over real
 * HTTP on loopback. Each instance listens on the port its PUBLIC_URL names (chosen before the
 * provider registers the redirect URIs). Everything stops at teardown.
 */
export async function startSsoStack (t: Test, options: SsoStackOptions = {}): Promise<SsoStack> {
  const ports = await Promise.all(Array.from({ length: options.instances ?? 1 }, () => freePort()))
  const urls = ports.map((port) => `http://127.0.0.1:${port}`)
  const provider = await startDevProvider({ ...options.provider, appUrls: urls })
  t.teardown(() => provider.stop())
  const db = await createTestDatabase(t)
  const instances: SsoInstance[] = []
  for (const [index, base] of urls.entries()) {
    const app = await buildApp({ ...options.app, env: { ...baseEnv, ...db.env, ...ssoEnv(provider, base), ...options.env } })
    t.teardown(() => app.close())
    await app.listen({ host: '127.0.0.1', port: ports[index] as number })
    instances.push({ app, base })
  }
  return { provider, db, instances, env: { ...baseEnv, ...db.env, ...options.env } }
}
