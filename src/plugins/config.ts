import fastifyEnv from '@fastify/env'
import fp from 'fastify-plugin'
import { asConfigError, envOptions, finalizeConfig, type Config, type ConfigValues } from '../config/config.js'

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * The validated variables. Not `fastify.config`: an app that registers the session plugin may
     * have an @fastify/env configuration of its own under that name.
     */
    sessionConfig: Config
  }
}

export interface ConfigPluginOptions {
  /** Exactly these variables (strings, as in the environment); when neither is given, the process environment and `.env`. */
  env?: ConfigValues
  /** Exactly these values, typed (`{ SESSION_PORT: 3306 }`), validated like variables; merged over `env`. */
  config?: ConfigValues
}

/** Validates every variable through @fastify/env before any other plugin reads `fastify.sessionConfig`. */
export default fp<ConfigPluginOptions>(async function configPlugin (fastify, options) {
  const given = options.env === undefined && options.config === undefined ? undefined : { ...options.env, ...options.config }
  try {
    await fastify.register(fastifyEnv, { ...envOptions(given), confKey: 'sessionConfig' })
    await fastify.after()
  } catch (error) {
    throw asConfigError(error)
  }
  for (const warning of finalizeConfig(fastify.sessionConfig)) fastify.log.warn(warning)
}, { name: 'session-config' })
