import { resolve } from 'node:path'
import fp from 'fastify-plugin'
import type { Authenticator } from '../auth/authenticator.js'
import { HtpasswdAuthenticator } from '../auth/htpasswd.js'
import { ConfigError } from '../config/config.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** null when no authenticator is configured: login then answers 503. */
    authenticator: Authenticator | null
  }
}

export interface AuthPluginOptions {
  /** A consumer's own check; without it, the htpasswd file named by AUTH_USERS_FILE. */
  authenticator?: Authenticator
}

export default fp<AuthPluginOptions>(async function authPlugin (fastify, options) {
  const path = fastify.sessionConfig.AUTH_USERS_FILE
  let authenticator = options.authenticator ?? null
  if (!authenticator && path) {
    try {
      authenticator = new HtpasswdAuthenticator(path, fastify.log.child({ component: 'auth' }))
    } catch (error) {
      if (error instanceof ConfigError) throw error
      // The absolute path: a relative one is read from the working directory, which under a
      // supervisor is seldom the folder the file was created in.
      const file = resolve(path)
      const code = (error as NodeJS.ErrnoException).code ?? String(error)
      const create = code === 'ENOENT' ? `; create it with: npm run users -- add NAME --file ${file}` : ''
      throw new ConfigError(`AUTH_USERS_FILE ${file} cannot be read: ${code}${create}`)
    }
  }
  if (!authenticator) fastify.log.warn('no AUTH_USERS_FILE: login answers 503 until one is configured')
  fastify.decorate('authenticator', authenticator)
}, { name: 'auth', dependencies: ['session-config'] })
