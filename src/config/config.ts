import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { hostname, networkInterfaces } from 'node:os'
import { parseEnv } from 'node:util'
import { Ajv, type ErrorObject } from 'ajv'
import ajvErrorsModule from 'ajv-errors'
import envSchema from 'env-schema'
import proxyAddr from 'proxy-addr'
import type { LifetimePolicy } from '../session/lifetime.js'
import { LEASE_TABLE } from '../session/lease.js'
import { configSchema, type Config } from './schema.js'

export type { Config } from './schema.js'

/** A configuration value that stops the process before it listens; `message` names the variable. */
export class ConfigError extends Error {
  override name = 'ConfigError'
}

/** Where the values come from: the real environment plus `.env`, or exactly the given object. */
export type ConfigSource = Record<string, string | undefined> | undefined

/** Variables as strings, or values already typed (`SESSION_PORT: 3306`); validated alike. */
export type ConfigValues = Record<string, string | number | boolean | undefined>

// Secrets published in tutorials and in this project's own .env.example: never good enough to sign with.
const SAMPLE_SECRETS = new Set([
  'keyboard cat', 'secret', 'changeme', 'change-me', 'session-secret',
  'replace-me-with-at-least-32-random-characters'
])
const MIN_PRODUCTION_SECRET_LENGTH = 32
const DEFAULT_TOUCH_AFTER_MS = 3600000

// ajv-errors is CommonJS with a `default` property; NodeNext types the default import as the module.
const ajvErrors = ajvErrorsModule.default

/** env-schema's Ajv settings, plus ajv-errors so each property's own message replaces Ajv's. */
function makeAjv (): Ajv {
  const ajv = new Ajv({
    allErrors: true,
    removeAdditional: true,
    useDefaults: true,
    coerceTypes: true,
    allowUnionTypes: true
  })
  ajvErrors(ajv)
  return ajv
}

/**
 * The options both `@fastify/env` (inside the app) and `loadConfig` (scripts) validate with. The
 * sources are merged here rather than by env-schema so that an empty value (`SESSION_PORT=` in a
 * .env) can mean "unset, use the default" instead of "invalid"; the environment wins over `.env`.
 */
export function envOptions (source: ConfigValues | undefined) {
  const merged = source ?? { ...readDotEnv(), ...process.env }
  const data = Object.fromEntries(Object.entries(merged).filter(([, value]) => value !== undefined && value !== ''))
  return { schema: configSchema, data, env: false, dotenv: false, ajv: makeAjv() }
}

function readDotEnv (path = '.env'): Record<string, string | undefined> {
  try {
    return parseEnv(readFileSync(path, 'utf8'))
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {}
    throw error
  }
}

/** Turns Ajv's errors into one line such as `SESSION_PORT must be an integer 1-65535`. */
export function describeValidationErrors (errors: ErrorObject[] | null | undefined): string {
  const lines = (errors ?? []).map((error) => {
    const variable = error.instancePath.replace(/^\//, '')
    return variable ? `${variable} ${error.message ?? 'is invalid'}` : (error.message ?? 'invalid configuration')
  })
  return [...new Set(lines)].join('; ')
}

export function sessionSecrets (config: Config): string[] {
  return [config.SESSION_SECRET as string, ...splitList(config.SESSION_PREVIOUS_SECRETS)]
}

export function cookieSecure (config: Config): boolean | 'auto' {
  return config.SESSION_COOKIE_SECURE === 'auto' ? 'auto' : config.SESSION_COOKIE_SECURE === 'true'
}

/** Fastify's `trustProxy`: a boolean, a hop count, or the list of trusted addresses/CIDRs. */
export function trustProxySetting (config: Config): boolean | number | string[] {
  const value = config.TRUST_PROXY.trim()
  if (value === 'true') return true
  if (value === 'false' || value === '') return false
  if (/^\d+$/.test(value)) return Number(value)
  return splitList(value)
}

/** The same decision Fastify makes from its `trustProxy` option, as a function of (address, hop). */
export function trustProxyFunction (config: Config): (address: string, hop: number) => boolean {
  const setting = trustProxySetting(config)
  if (typeof setting === 'boolean') return () => setting
  if (typeof setting === 'number') return (_address, hop) => hop < setting
  return proxyAddr.compile(setting)
}

export function touchAfterMs (config: Config): number {
  return config.SESSION_TOUCH_AFTER ?? Math.min(DEFAULT_TOUCH_AFTER_MS, Math.floor(config.SESSION_MAX_AGE / 10))
}

/** The variables that decide how long sessions live, as the stores and routes take them. */
export function lifetimePolicy (config: Config): LifetimePolicy {
  return {
    maxAgeMs: config.SESSION_MAX_AGE,
    absoluteTimeoutMs: config.SESSION_ABSOLUTE_TIMEOUT,
    anonymousMaxAgeMs: Math.min(config.SESSION_ANONYMOUS_MAX_AGE, config.SESSION_MAX_AGE),
    touchAfterMs: touchAfterMs(config)
  }
}

export function usesDatabase (config: Config): boolean {
  return Boolean(config.SESSION_HOST)
}

/** A database server the store may use: SESSION_HOST lists one or several (a Galera cluster's nodes). */
export interface DatabaseEndpoint {
  host: string
  port: number
}

// A name or IPv4 address, or an IPv6 address in brackets, then an optional :port.
const ENDPOINT = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]]+))(?::(\d{1,5}))?$/

/** `host:port`, an IPv6 address in brackets. */
export function endpointName ({ host, port }: DatabaseEndpoint): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
}

/**
 * The servers SESSION_HOST names, in its order (the order the store prefers them in), each with
 * SESSION_PORT unless it names its own port. Throws a ConfigError naming the entry that is wrong.
 */
export function databaseEndpoints (config: Pick<Config, 'SESSION_HOST' | 'SESSION_PORT'>): DatabaseEndpoint[] {
  const entries = splitList(config.SESSION_HOST ?? '')
  return entries.map((entry) => {
    const match = ENDPOINT.exec(entry)
    const port = match?.[3] === undefined ? config.SESSION_PORT : Number(match[3])
    if (!match || !Number.isInteger(port) || port < 1 || port > 65535) {
      throw new ConfigError(`SESSION_HOST must be host or host:port entries separated by commas, each port 1-65535 (got ${JSON.stringify(entry)})`)
    }
    return { host: (match[1] ?? match[2]) as string, port }
  })
}

/** Where GET /metrics is served: on the main port, nowhere, or on a port of its own. */
export function metricsSetting (config: Config): 'on' | 'off' | number {
  return config.METRICS === 'on' || config.METRICS === 'off' ? config.METRICS : Number(config.METRICS)
}

export function splitList (value: string): string[] {
  return value.split(',').map((item) => item.trim()).filter((item) => item.length > 0)
}

/**
 * The rules that involve more than one variable, which a per-property schema cannot state with a
 * clear message. Fills in the random development secret; returns the warnings to log.
 */
export function finalizeConfig (config: Config): string[] {
  const warnings: string[] = []
  const production = config.NODE_ENV === 'production'

  const secret = config.SESSION_SECRET
  if (secret === undefined) {
    if (production) throw new ConfigError('SESSION_SECRET is required when NODE_ENV=production')
    config.SESSION_SECRET = randomBytes(32).toString('base64url')
    warnings.push('SESSION_SECRET is not set: using a random secret, so sessions end when this process stops')
  } else if (production && isSampleSecret(secret)) {
    throw new ConfigError('SESSION_SECRET must not be a published sample value')
  } else if (production && secret.length < MIN_PRODUCTION_SECRET_LENGTH) {
    throw new ConfigError(`SESSION_SECRET must be at least ${MIN_PRODUCTION_SECRET_LENGTH} characters when NODE_ENV=production`)
  }
  // A previous secret still signs cookies that are accepted: a weak one forges sessions as well.
  if (production) {
    const previous = splitList(config.SESSION_PREVIOUS_SECRETS)
    if (previous.some(isSampleSecret)) throw new ConfigError('SESSION_PREVIOUS_SECRETS must not list a published sample value')
    if (previous.some((old) => old.length < MIN_PRODUCTION_SECRET_LENGTH)) {
      throw new ConfigError(`SESSION_PREVIOUS_SECRETS must list secrets of at least ${MIN_PRODUCTION_SECRET_LENGTH} characters when NODE_ENV=production`)
    }
  }

  if (config.SESSION_HOST === undefined) {
    if (production) throw new ConfigError('SESSION_HOST is required when NODE_ENV=production (the in-memory store loses every session on restart)')
    warnings.push('SESSION_HOST is not set: sessions are kept in memory and vanish when this process stops')
  } else {
    if (config.SESSION_USER === undefined) throw new ConfigError('SESSION_USER is required when SESSION_HOST is set')
    if (config.SESSION_DATABASE === undefined) throw new ConfigError('SESSION_DATABASE is required when SESSION_HOST is set')
    const endpoints = databaseEndpoints(config)
    if (endpoints.length === 0) throw new ConfigError('SESSION_HOST must name at least one host')
    if (new Set(endpoints.map(endpointName)).size < endpoints.length) {
      throw new ConfigError('SESSION_HOST must not list the same host:port twice')
    }
    checkDatabasePort(config, endpoints)
    if (config.SESSION_TABLE === LEASE_TABLE) throw new ConfigError(`SESSION_TABLE must not be ${LEASE_TABLE}: the store keeps its cleanup leases in that table`)
  }

  if (config.SESSION_COOKIE_SAMESITE === 'none' && config.SESSION_COOKIE_SECURE === 'false') {
    throw new ConfigError('SESSION_COOKIE_SAMESITE=none needs SESSION_COOKIE_SECURE=true or auto (browsers drop SameSite=None cookies that are not Secure)')
  }

  try {
    trustProxyFunction(config)
  } catch {
    throw new ConfigError('TRUST_PROXY must be true, false, a hop count or comma-separated addresses/CIDRs')
  }
  // true takes the first address of X-Forwarded-For, which the client writes: it would pick the
  // address the login throttle counts per and the session list shows.
  if (production && trustProxySetting(config) === true) {
    warnings.push('TRUST_PROXY=true believes X-Forwarded-For from any client: a client picks the address the per-address login throttle counts and the session list shows. Set the hop count (TRUST_PROXY=1 for one proxy) or the proxies\' addresses (TRUST_PROXY=10.0.0.1,10.0.0.2) instead')
  }

  // The server itself speaks plain HTTP: without a trusted proxy saying https, `auto` never marks
  // a cookie Secure, and people get logged in over plain HTTP.
  if (production && config.SESSION_COOKIE_SECURE === 'auto' && trustProxySetting(config) === false) {
    warnings.push('SESSION_COOKIE_SECURE=auto without TRUST_PROXY: this server speaks plain HTTP, so no cookie it sends is Secure and logins work over plain HTTP. In production put it behind a TLS proxy, set TRUST_PROXY to that proxy, and SESSION_COOKIE_SECURE=true')
  }

  if (config.SESSION_TOUCH_AFTER !== undefined && config.SESSION_TOUCH_AFTER >= config.SESSION_MAX_AGE) {
    throw new ConfigError('SESSION_TOUCH_AFTER must be less than SESSION_MAX_AGE')
  }

  if (metricsSetting(config) === config.PORT) {
    throw new ConfigError('METRICS must be another port than PORT (or on, to serve /metrics on PORT)')
  }

  for (const origin of splitList(config.CORS_ORIGINS)) {
    if (!isOrigin(origin)) throw new ConfigError('CORS_ORIGINS must list origins such as https://app.example.com (got an entry that is not one)')
  }
  checkSingleSignOn(config)
  return warnings
}

/**
 * The database on this machine at the port this server listens on: one of the two is wrong, and
 * mostly SESSION_PORT was taken for this server's port. Other hosts may well use PORT's number.
 */
function checkDatabasePort (config: Config, endpoints: DatabaseEndpoint[]): void {
  if (config.PORT === 0) return
  const clash = endpoints.find(({ host, port }) => port === config.PORT && isThisMachine(host, config.HOST))
  if (clash === undefined) return
  const rest = 'is the database\'s port (3306 for MySQL/MariaDB), PORT the one this server listens on'
  if (clash.port === config.SESSION_PORT) {
    throw new ConfigError(`SESSION_PORT must not be PORT (${config.PORT}) while the database is on this machine (SESSION_HOST ${clash.host}): SESSION_PORT ${rest}`)
  }
  throw new ConfigError(`SESSION_HOST must not name PORT (${config.PORT}) for a database on this machine (${endpointName(clash)}): the port there ${rest}`)
}

/** Loopback, localhost, HOST itself, or, when HOST is every address, any address of this machine. */
function isThisMachine (host: string, listenHost: string): boolean {
  const name = host.toLowerCase()
  if (name === 'localhost' || name.endsWith('.localhost') || name === '::1' || /^127(?:\.\d{1,3}){3}$/.test(name)) return true
  if (name === listenHost.toLowerCase() || name === '0.0.0.0' || name === '::') return true
  if (listenHost !== '0.0.0.0' && listenHost !== '::') return false
  if (name === hostname().toLowerCase()) return true
  return Object.values(networkInterfaces()).some((addresses) => addresses?.some(({ address }) => address.toLowerCase() === name))
}

/** SSO is on with OIDC_ISSUER; then the client and the public URL the provider redirects to are needed. */
function checkSingleSignOn (config: Config): void {
  const production = config.NODE_ENV === 'production'
  if (config.PUBLIC_URL !== undefined) {
    if (!isOrigin(config.PUBLIC_URL.replace(/\/$/, ''))) {
      throw new ConfigError('PUBLIC_URL must be the base URL people open, such as https://app.example (scheme, host and port only)')
    }
    config.PUBLIC_URL = config.PUBLIC_URL.replace(/\/$/, '')
    if (production && !config.PUBLIC_URL.startsWith('https:')) throw new ConfigError('PUBLIC_URL must be https when NODE_ENV=production')
  }
  if (config.OIDC_ISSUER === undefined) {
    const stray = (['OIDC_CLIENT_ID', 'OIDC_CLIENT_SECRET'] as const).find((name) => config[name] !== undefined)
    if (stray) throw new ConfigError(`${stray} is set but OIDC_ISSUER is not: set OIDC_ISSUER to turn single sign-on on`)
    return
  }
  // Discovery appends to the issuer's path: a query, a fragment or credentials can never match the
  // provider's own `issuer`, and SSO would answer 503 for ever instead of failing here.
  if (!isHttpUrl(config.OIDC_ISSUER) || /[?#@]/.test(config.OIDC_ISSUER)) {
    throw new ConfigError('OIDC_ISSUER must be an http(s) URL without query, fragment or credentials, such as https://sso.example/realms/main')
  }
  // Tokens cross this connection: plain HTTP only to a provider on this machine (development, tests).
  if (!config.OIDC_ISSUER.startsWith('https:') && !isLoopbackUrl(config.OIDC_ISSUER)) {
    throw new ConfigError('OIDC_ISSUER must be https (plain http only for a provider on 127.0.0.1, ::1 or localhost)')
  }
  if (config.OIDC_CLIENT_ID === undefined) throw new ConfigError('OIDC_CLIENT_ID is required when OIDC_ISSUER is set')
  if (config.OIDC_CLIENT_SECRET === undefined) throw new ConfigError('OIDC_CLIENT_SECRET is required when OIDC_ISSUER is set')
  if (config.PUBLIC_URL === undefined) throw new ConfigError('PUBLIC_URL is required when OIDC_ISSUER is set (the provider redirects to PUBLIC_URL/auth/callback)')
  if (!config.OIDC_SCOPES.split(' ').includes('openid')) throw new ConfigError('OIDC_SCOPES must include openid')
  // The provider's redirect back is a cross-site navigation: a Strict cookie stays home, and the
  // callback would never find the login it completes.
  if (config.SESSION_COOKIE_SAMESITE === 'strict') {
    throw new ConfigError('SESSION_COOKIE_SAMESITE=strict keeps the session cookie off the provider\'s redirect to /auth/callback: use lax (the default) with OIDC_ISSUER')
  }
}

function isLoopbackUrl (value: string): boolean {
  const host = new URL(value).hostname
  return host === 'localhost' || host === '[::1]' || /^127(?:\.\d{1,3}){3}$/.test(host)
}

function isSampleSecret (secret: string): boolean {
  return SAMPLE_SECRETS.has(secret.trim().toLowerCase())
}

function isHttpUrl (value: string): boolean {
  try {
    const { protocol } = new URL(value)
    return protocol === 'http:' || protocol === 'https:'
  } catch {
    return false
  }
}

function isOrigin (value: string): boolean {
  return isHttpUrl(value) && new URL(value).origin === value
}

/**
 * Reads, validates and completes the configuration for code that runs outside Fastify (scripts,
 * CLIs): the seed's `config` module. The server itself validates through `@fastify/env`.
 */
export function loadConfig (source?: ConfigSource): { config: Config, warnings: string[] } {
  let config: Config
  try {
    config = envSchema<Config>(envOptions(source))
  } catch (error) {
    throw asConfigError(error)
  }
  const warnings = finalizeConfig(config)
  return { config, warnings }
}

/** env-schema throws a plain Error with Ajv's `errors`; give it the one-line message we promise. */
export function asConfigError (error: unknown): unknown {
  const errors = (error as { errors?: unknown } | undefined)?.errors
  return Array.isArray(errors) ? new ConfigError(describeValidationErrors(errors as ErrorObject[])) : error
}
