import fastifyEnv from '@fastify/env'
import fp from 'fastify-plugin'
import { asConfigError, envOptions, finalizeConfig, type Config, type ConfigSource } from '../config/config.js'

declare module 'fastify' {
  interface FastifyInstance {
    config: Config
  }
}

export interface ConfigPluginOptions {
  /** Exactly these variables; when absent, the process environment and `.env`. */
  env?: ConfigSource
}

/** Validates every variable through @fastify/env before any other plugin reads `fastify.config`. */
export default fp<ConfigPluginOptions>(async function configPlugin (fastify, options) {
  try {
    await fastify.register(fastifyEnv, envOptions(options.env))
    await fastify.after()
  } catch (error) {
    throw asConfigError(error)
  }
  for (const warning of finalizeConfig(fastify.config)) fastify.log.warn(warning)
  fastify.log.level = fastify.config.LOG_LEVEL
}, { name: 'config' })
