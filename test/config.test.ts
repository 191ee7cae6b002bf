import { readFileSync } from 'node:fs'
import { parseEnv } from 'node:util'
import t from 'tap'
import { buildApp } from '../src/app.js'
import { ConfigError, cookieSecure, databaseEndpoints, loadConfig, metricsSetting, sessionSecrets, touchAfterMs, trustProxySetting } from '../src/config/config.js'
import { configSchema } from '../src/config/schema.js'
import { baseEnv, build, createTestDatabase, type Env } from './helper.js'
import { WARN, captureLog } from './support/log-capture.js'

const database: Env = { SESSION_HOST: '127.0.0.1', SESSION_USER: 'root', SESSION_DATABASE: 'test' }
const productionOk: Env = {
  NODE_ENV: 'production',
  SESSION_SECRET: 'a-production-secret-of-more-than-32-characters',
  ...database
}

const DATABASE_PORT_RULE = 'is the database\'s port (3306 for MySQL/MariaDB), PORT the one this server listens on'
const ISSUER_URL_RULE = 'OIDC_ISSUER must be an http(s) URL without query, fragment or credentials, such as https://sso.example/realms/main'
const sso: Env = { OIDC_ISSUER: 'https://sso.example/realms/main', OIDC_CLIENT_ID: 'app', OIDC_CLIENT_SECRET: 'client-secret', PUBLIC_URL: 'https://app.example' }

// One row per rule: the variables, and the exact line the process prints before it exits 1.
const badValues: Array<[string, Env, string]> = [
  ['database port not a number', { SESSION_PORT: 'abc' }, 'SESSION_PORT must be an integer 1-65535'],
  ['database port too large', { SESSION_PORT: '70000' }, 'SESSION_PORT must be an integer 1-65535'],
  ['database port zero', { SESSION_PORT: '0' }, 'SESSION_PORT must be an integer 1-65535'],
  ['database port fractional', { SESSION_PORT: '33.5' }, 'SESSION_PORT must be an integer 1-65535'],
  ['http port too large', { PORT: '65536' }, 'PORT must be an integer 0-65535'],
  ['unknown NODE_ENV', { NODE_ENV: 'prod' }, 'NODE_ENV must be one of development, production, test'],
  ['unknown log level', { LOG_LEVEL: 'loud' }, 'LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent'],
  ['table name with a quote', { SESSION_TABLE: 'sessions`; DROP TABLE x' }, 'SESSION_TABLE must match ^[A-Za-z0-9_]{1,64}$'],
  ['table name too long', { SESSION_TABLE: 'x'.repeat(65) }, 'SESSION_TABLE must match ^[A-Za-z0-9_]{1,64}$'],
  ['database name with a space', { ...database, SESSION_DATABASE: 'my db' }, 'SESSION_DATABASE must be 1-64 characters of A-Z, a-z, 0-9, _, $ or -'],
  ['max age not a number', { SESSION_MAX_AGE: 'month' }, 'SESSION_MAX_AGE must be an integer number of milliseconds, at least 1000'],
  ['max age too short', { SESSION_MAX_AGE: '10' }, 'SESSION_MAX_AGE must be an integer number of milliseconds, at least 1000'],
  ['negative absolute timeout', { SESSION_ABSOLUTE_TIMEOUT: '-1' }, 'SESSION_ABSOLUTE_TIMEOUT must be an integer number of milliseconds (0 turns it off)'],
  ['resave not boolean', { SESSION_RESAVE: 'yes' }, 'SESSION_RESAVE must be true or false'],
  ['saveUninitialized not boolean', { SESSION_SAVE_UNINITIALIZED: '2' }, 'SESSION_SAVE_UNINITIALIZED must be true or false'],
  ['cookie secure unknown', { SESSION_COOKIE_SECURE: 'maybe' }, 'SESSION_COOKIE_SECURE must be one of true, false, auto'],
  ['samesite unknown', { SESSION_COOKIE_SAMESITE: 'loose' }, 'SESSION_COOKIE_SAMESITE must be one of lax, strict, none'],
  ['cookie name with a space', { SESSION_COOKIE_NAME: 'my sid' }, "SESSION_COOKIE_NAME must be 1-64 cookie-name characters (letters, digits, !#$%&'*+-.^_`|~)"],
  ['touch-after not a number', { SESSION_TOUCH_AFTER: 'soon' }, 'SESSION_TOUCH_AFTER must be an integer number of milliseconds'],
  ['cleanup interval negative', { SESSION_CLEANUP_INTERVAL: '-5' }, 'SESSION_CLEANUP_INTERVAL must be an integer number of milliseconds (0 turns cleanup off)'],
  ['two bad values', { SESSION_PORT: 'x', PORT: 'y' }, 'PORT must be an integer 0-65535; SESSION_PORT must be an integer 1-65535'],
  ['production without secret', { ...productionOk, SESSION_SECRET: undefined }, 'SESSION_SECRET is required when NODE_ENV=production'],
  ['production with empty secret', { ...productionOk, SESSION_SECRET: '' }, 'SESSION_SECRET is required when NODE_ENV=production'],
  ['production with a short secret', { ...productionOk, SESSION_SECRET: 'x'.repeat(31) }, 'SESSION_SECRET must be at least 32 characters when NODE_ENV=production'],
  ['production with keyboard cat', { ...productionOk, SESSION_SECRET: 'keyboard cat' }, 'SESSION_SECRET must not be a published sample value'],
  ['production with "secret"', { ...productionOk, SESSION_SECRET: 'secret' }, 'SESSION_SECRET must not be a published sample value'],
  ['production with "changeme"', { ...productionOk, SESSION_SECRET: 'changeme' }, 'SESSION_SECRET must not be a published sample value'],
  ['production with the .env.example secret', { ...productionOk, SESSION_SECRET: 'replace-me-with-at-least-32-random-characters' }, 'SESSION_SECRET must not be a published sample value'],
  ['production with a short previous secret', { ...productionOk, SESSION_PREVIOUS_SECRETS: 'x'.repeat(31) }, 'SESSION_PREVIOUS_SECRETS must list secrets of at least 32 characters when NODE_ENV=production'],
  ['production with a short previous secret after a good one', { ...productionOk, SESSION_PREVIOUS_SECRETS: `${'x'.repeat(32)}, old` }, 'SESSION_PREVIOUS_SECRETS must list secrets of at least 32 characters when NODE_ENV=production'],
  ['production with keyboard cat as a previous secret', { ...productionOk, SESSION_PREVIOUS_SECRETS: 'keyboard cat' }, 'SESSION_PREVIOUS_SECRETS must not list a published sample value'],
  ['production with the .env.example secret as a previous one', { ...productionOk, SESSION_PREVIOUS_SECRETS: `${'y'.repeat(40)},Replace-Me-With-At-Least-32-Random-Characters` }, 'SESSION_PREVIOUS_SECRETS must not list a published sample value'],
  ['production without a database', { ...productionOk, SESSION_HOST: undefined }, 'SESSION_HOST is required when NODE_ENV=production (the in-memory store loses every session on restart)'],
  ['database without user', { ...database, SESSION_USER: undefined }, 'SESSION_USER is required when SESSION_HOST is set'],
  ['database without schema', { ...database, SESSION_DATABASE: undefined }, 'SESSION_DATABASE is required when SESSION_HOST is set'],
  ['a host with a port out of range', { ...database, SESSION_HOST: 'db1:3306,db2:65536' }, 'SESSION_HOST must be host or host:port entries separated by commas, each port 1-65535 (got "db2:65536")'],
  ['a host with a port that is no number', { ...database, SESSION_HOST: 'db1:mysql' }, 'SESSION_HOST must be host or host:port entries separated by commas, each port 1-65535 (got "db1:mysql")'],
  ['an IPv6 host without brackets', { ...database, SESSION_HOST: '::1' }, 'SESSION_HOST must be host or host:port entries separated by commas, each port 1-65535 (got "::1")'],
  ['only commas', { ...database, SESSION_HOST: ' , ' }, 'SESSION_HOST must name at least one host'],
  ['one node twice', { ...database, SESSION_HOST: 'db1,db1:3306' }, 'SESSION_HOST must not list the same host:port twice'],
  ['the lease table as the session table', { ...database, SESSION_TABLE: 'session_leases' }, 'SESSION_TABLE must not be session_leases: the store keeps its cleanup leases in that table'],
  ['the database\'s port as PORT, on loopback', { ...database, PORT: '3306' }, `SESSION_PORT must not be PORT (3306) while the database is on this machine (SESSION_HOST 127.0.0.1): SESSION_PORT ${DATABASE_PORT_RULE}`],
  ['the database\'s port as PORT, on localhost', { ...database, SESSION_HOST: 'localhost', SESSION_PORT: '9000' }, `SESSION_PORT must not be PORT (9000) while the database is on this machine (SESSION_HOST localhost): SESSION_PORT ${DATABASE_PORT_RULE}`],
  ['the database\'s port as PORT, on HOST', { ...database, SESSION_HOST: 'app.internal', HOST: 'app.internal', SESSION_PORT: '8080', PORT: '8080' }, `SESSION_PORT must not be PORT (8080) while the database is on this machine (SESSION_HOST app.internal): SESSION_PORT ${DATABASE_PORT_RULE}`],
  ['a node on this machine at PORT', { ...database, SESSION_HOST: 'db1,[::1]:9000' }, `SESSION_HOST must not name PORT (9000) for a database on this machine ([::1]:9000): the port there ${DATABASE_PORT_RULE}`],
  ['SameSite=None on an insecure cookie', { SESSION_COOKIE_SAMESITE: 'none', SESSION_COOKIE_SECURE: 'false' }, 'SESSION_COOKIE_SAMESITE=none needs SESSION_COOKIE_SECURE=true or auto (browsers drop SameSite=None cookies that are not Secure)'],
  ['trust proxy garbage', { TRUST_PROXY: 'not-an-address' }, 'TRUST_PROXY must be true, false, a hop count or comma-separated addresses/CIDRs'],
  ['touch-after not below max age', { SESSION_MAX_AGE: '60000', SESSION_TOUCH_AFTER: '60000' }, 'SESSION_TOUCH_AFTER must be less than SESSION_MAX_AGE'],
  ['metrics neither on, off nor a port', { METRICS: 'yes' }, 'METRICS must be on, off or a port number 1-65535'],
  ['metrics port zero', { METRICS: '0' }, 'METRICS must be on, off or a port number 1-65535'],
  ['metrics port too large', { METRICS: '65536' }, 'METRICS must be on, off or a port number 1-65535'],
  ['metrics on the main port', { PORT: '9100', METRICS: '9100' }, 'METRICS must be another port than PORT (or on, to serve /metrics on PORT)'],
  ['CORS origin with a path', { CORS_ORIGINS: 'http://localhost:5173/app' }, 'CORS_ORIGINS must list origins such as https://app.example.com (got an entry that is not one)'],
  ['an issuer that is no URL', { ...sso, OIDC_ISSUER: 'keycloak' }, ISSUER_URL_RULE],
  ['an issuer with a query', { ...sso, OIDC_ISSUER: 'https://sso.example/realms/x?tenant=1' }, ISSUER_URL_RULE],
  ['an issuer with a fragment', { ...sso, OIDC_ISSUER: 'https://sso.example/realms/x#a' }, ISSUER_URL_RULE],
  ['an issuer with credentials', { ...sso, OIDC_ISSUER: 'https://user:pw@sso.example/realms/x' }, ISSUER_URL_RULE],
  ['an issuer with a password only', { ...sso, OIDC_ISSUER: 'https://:pw@sso.example/realms/x' }, ISSUER_URL_RULE],
  ['an issuer over plain HTTP on the network', { ...sso, OIDC_ISSUER: 'http://sso.example/realms/main' }, 'OIDC_ISSUER must be https (plain http only for a provider on 127.0.0.1, ::1 or localhost)'],
  ['an issuer without a client id', { ...sso, OIDC_CLIENT_ID: undefined }, 'OIDC_CLIENT_ID is required when OIDC_ISSUER is set'],
  ['an issuer without a client secret', { ...sso, OIDC_CLIENT_SECRET: undefined }, 'OIDC_CLIENT_SECRET is required when OIDC_ISSUER is set'],
  ['an issuer without a public URL', { ...sso, PUBLIC_URL: undefined }, 'PUBLIC_URL is required when OIDC_ISSUER is set (the provider redirects to PUBLIC_URL/auth/callback)'],
  ['a client id without an issuer', { ...sso, OIDC_ISSUER: undefined }, 'OIDC_CLIENT_ID is set but OIDC_ISSUER is not: set OIDC_ISSUER to turn single sign-on on'],
  ['a public URL with a path', { ...sso, PUBLIC_URL: 'https://app.example/app' }, 'PUBLIC_URL must be the base URL people open, such as https://app.example (scheme, host and port only)'],
  ['a public URL that is no URL', { ...sso, PUBLIC_URL: 'app.example' }, 'PUBLIC_URL must be the base URL people open, such as https://app.example (scheme, host and port only)'],
  ['a plain-HTTP public URL in production', { ...productionOk, ...sso, PUBLIC_URL: 'http://app.example' }, 'PUBLIC_URL must be https when NODE_ENV=production'],
  ['scopes without openid', { ...sso, OIDC_SCOPES: 'profile email' }, 'OIDC_SCOPES must include openid'],
  ['scopes with two spaces', { ...sso, OIDC_SCOPES: 'openid  email' }, 'OIDC_SCOPES must be scopes separated by single spaces, such as "openid profile email"'],
  ['SameSite=Strict with SSO', { ...sso, SESSION_COOKIE_SAMESITE: 'strict' }, 'SESSION_COOKIE_SAMESITE=strict keeps the session cookie off the provider\'s redirect to /auth/callback: use lax (the default) with OIDC_ISSUER']
]

t.test('every bad value stops start-up with a message naming the variable', async (t) => {
  for (const [label, env, message] of badValues) {
    t.throws(() => loadConfig({ ...env }), new ConfigError(message), label)
  }
})

t.test('@fastify/env inside the app rejects the same values with the same message', async (t) => {
  for (const [label, env, message] of badValues) {
    await t.rejects(buildApp({ env: { LOG_LEVEL: 'silent', ...env } }), { name: 'ConfigError', message }, label)
  }
})

t.test('SESSION_HOST lists a Galera cluster\'s nodes, each with SESSION_PORT unless it names a port', async (t) => {
  const { config } = loadConfig({ ...database, SESSION_HOST: 'db1, 10.0.0.2:3307,[fd00::3]:3308,[::1]', SESSION_PORT: '3310' })
  t.same(databaseEndpoints(config), [
    { host: 'db1', port: 3310 },
    { host: '10.0.0.2', port: 3307 },
    { host: 'fd00::3', port: 3308 },
    { host: '::1', port: 3310 }
  ])
  t.same(databaseEndpoints(loadConfig(database).config), [{ host: '127.0.0.1', port: 3306 }], 'one host, as before')
})

t.test('PORT may be the database\'s port number on another machine, or when this server takes a random port', async (t) => {
  t.doesNotThrow(() => loadConfig({ ...database, SESSION_HOST: 'db.example', PORT: '3306' }), 'another machine')
  t.doesNotThrow(() => loadConfig({ ...database, SESSION_HOST: 'db1,db2:9000' }), 'another machine, the port in SESSION_HOST')
  t.doesNotThrow(() => loadConfig({ ...database, HOST: '127.0.0.1', SESSION_HOST: '10.0.0.7', PORT: '3306' }), 'bound to loopback, the database elsewhere')
  t.doesNotThrow(() => loadConfig({ ...database, PORT: '0' }), 'PORT=0')
})

t.test('defaults are the seed app\'s settings', async (t) => {
  const { config, warnings } = loadConfig({})
  t.equal(config.NODE_ENV, 'development')
  t.equal(config.HOST, '0.0.0.0')
  t.equal(config.PORT, 9000)
  t.equal(config.SESSION_PORT, 3306)
  t.equal(config.SESSION_TABLE, 'sessions')
  t.equal(config.SESSION_MAX_AGE, 2628000000)
  t.equal(config.SESSION_RESAVE, false)
  t.equal(config.SESSION_SAVE_UNINITIALIZED, true)
  t.equal(cookieSecure(config), true)
  t.equal(config.SESSION_COOKIE_SAMESITE, 'lax')
  t.not(config.SESSION_COOKIE_NAME, 'connect.sid')
  t.equal(config.SESSION_ABSOLUTE_TIMEOUT, 0)
  t.equal(trustProxySetting(config), false)
  t.equal(touchAfterMs(config), 3600000)
  t.equal(metricsSetting(config), 'on')
  t.match(config.SESSION_SECRET, /^[A-Za-z0-9_-]{43}$/, 'a random 256-bit secret outside production')
  t.not(loadConfig({}).config.SESSION_SECRET, config.SESSION_SECRET, 'random per process start')
  t.match(warnings, [/SESSION_SECRET is not set/, /SESSION_HOST is not set/])
})

t.test('values are parsed into what the libraries expect', async (t) => {
  const { config } = loadConfig({
    ...database,
    SESSION_PORT: '3307',
    SESSION_SECRET: 'new',
    SESSION_PREVIOUS_SECRETS: 'old1, old2,,',
    SESSION_RESAVE: 'true',
    SESSION_SAVE_UNINITIALIZED: 'false',
    SESSION_COOKIE_SECURE: 'auto',
    TRUST_PROXY: '10.0.0.0/8, 127.0.0.1'
  })
  t.equal(config.SESSION_PORT, 3307)
  t.same(sessionSecrets(config), ['new', 'old1', 'old2'])
  t.equal(config.SESSION_RESAVE, true)
  t.equal(config.SESSION_SAVE_UNINITIALIZED, false)
  t.equal(cookieSecure(config), 'auto')
  t.same(trustProxySetting(config), ['10.0.0.0/8', '127.0.0.1'])
  t.equal(trustProxySetting(loadConfig({ TRUST_PROXY: '2' }).config), 2)
  t.equal(trustProxySetting(loadConfig({ TRUST_PROXY: 'true' }).config), true)
  t.equal(metricsSetting(loadConfig({ METRICS: '9100' }).config), 9100)
  t.equal(metricsSetting(loadConfig({ METRICS: 'off' }).config), 'off')
  t.equal(touchAfterMs(loadConfig({ SESSION_MAX_AGE: '60000' }).config), 6000, 'a short max age gets a proportionate touch interval')
})

t.test('an empty value means the default, as in a .env with `SESSION_PORT=`', async (t) => {
  const { config } = loadConfig({ SESSION_PORT: '', SESSION_MAX_AGE: '', SESSION_HOST: '', SESSION_TOUCH_AFTER: '', AUTH_USERS_FILE: '', SESSION_DATABASE: '' })
  t.equal(config.SESSION_PORT, 3306)
  t.equal(config.SESSION_MAX_AGE, 2628000000)
  t.equal(config.SESSION_HOST, undefined)
  t.equal(config.SESSION_TOUCH_AFTER, undefined)
  t.equal(config.AUTH_USERS_FILE, undefined)
  t.equal(config.SESSION_DATABASE, undefined)
})

// TRUST_PROXY in production: whether start-up warns that the client's own X-Forwarded-For is believed.
const trustProxyWarnings: Array<[string, boolean]> = [
  ['true', true],
  [' true ', true],
  ['false', false],
  ['1', false],
  ['2', false],
  ['10.0.0.1, 10.0.0.2', false],
  ['10.0.0.0/8', false]
]
const TRUST_ANYONE = /^TRUST_PROXY=.* believes X-Forwarded-For from any client: .*login throttle.*session list.*hop count \(TRUST_PROXY=1 .*addresses/

t.test('TRUST_PROXY=true warns in production, a hop count or proxy addresses do not', async (t) => {
  for (const [value, warns] of trustProxyWarnings) {
    const { warnings } = loadConfig({ ...productionOk, TRUST_PROXY: value })
    if (warns) t.match(warnings, [TRUST_ANYONE], `TRUST_PROXY=${value}: one warning`)
    else t.same(warnings, [], `TRUST_PROXY=${value}: none`)
  }
  const development = loadConfig({ ...database, SESSION_SECRET: 'x', TRUST_PROXY: 'true' }).warnings
  t.notOk(development.some((warning) => TRUST_ANYONE.test(warning)), 'not outside production: a local proxy or none')
})

t.test('SESSION_COOKIE_SECURE=auto in production without TRUST_PROXY warns: nothing would ever be Secure', async (t) => {
  const AUTO_WITHOUT_PROXY = /^SESSION_COOKIE_SECURE=auto without TRUST_PROXY: .*plain HTTP.*TLS proxy.*SESSION_COOKIE_SECURE=true/
  t.match(loadConfig({ ...productionOk, SESSION_COOKIE_SECURE: 'auto' }).warnings, [AUTO_WITHOUT_PROXY], 'production, no proxy: one warning')
  t.same(loadConfig({ ...productionOk, SESSION_COOKIE_SECURE: 'auto', TRUST_PROXY: '1' }).warnings, [], 'behind a trusted proxy: none')
  t.same(loadConfig({ ...productionOk, SESSION_COOKIE_SECURE: 'true' }).warnings, [], 'true: none')
  t.notOk(loadConfig({ ...database, SESSION_SECRET: 'x', SESSION_COOKIE_SECURE: 'auto' }).warnings.some((warning) => AUTO_WITHOUT_PROXY.test(warning)), 'not outside production')
})

t.test('the server logs that warning at start', async (t) => {
  const db = await createTestDatabase(t)
  const log = captureLog()
  await build(t, { ...productionOk, ...db.env, LOG_LEVEL: 'warn', SESSION_COOKIE_SECURE: 'false', TRUST_PROXY: 'true' }, { logger: log.logger })
  t.match(log.entries().filter((entry) => entry.level >= WARN).map((entry) => entry.msg), [TRUST_ANYONE])
})

t.test('production starts with a long secret and a database', async (t) => {
  const { config, warnings } = loadConfig(productionOk)
  t.equal(config.NODE_ENV, 'production')
  t.same(warnings, [])
  const previous = `${'x'.repeat(32)}, ${'y'.repeat(48)}`
  t.same(sessionSecrets(loadConfig({ ...productionOk, SESSION_PREVIOUS_SECRETS: previous }).config).slice(1), ['x'.repeat(32), 'y'.repeat(48)], 'and previous secrets as long')
})

t.test('variables the schema does not know are dropped, not passed on', async (t) => {
  const { config } = loadConfig({ SOMETHING_ELSE: 'x' })
  t.notOk('SOMETHING_ELSE' in config)
})

t.test('the app uses the values it validated', async (t) => {
  const app = await buildApp({ env: { ...baseEnv, SESSION_TABLE: 'my_sessions', PORT: '1234' } })
  t.teardown(() => app.close())
  await app.ready()
  t.equal(app.sessionConfig.SESSION_TABLE, 'my_sessions')
  t.equal(app.sessionConfig.PORT, 1234)
})

t.test('single sign-on settings that are accepted', async (t) => {
  const { config } = loadConfig({ ...productionOk, ...sso, PUBLIC_URL: 'https://app.example/' })
  t.equal(config.PUBLIC_URL, 'https://app.example', 'a trailing slash is dropped')
  t.equal(config.OIDC_SCOPES, 'openid profile email', 'the default scopes')
  for (const issuer of ['http://127.0.0.1:9010', 'http://localhost:8080/realms/dev', 'http://[::1]:9010']) {
    t.doesNotThrow(() => loadConfig({ ...sso, OIDC_ISSUER: issuer }), `a provider on this machine over plain HTTP: ${issuer}`)
  }
})

t.test('.env.example lists every variable, each under a comment, with its default', async (t) => {
  const lines = readFileSync(new URL('../.env.example', import.meta.url), 'utf8').split('\n')
  const listed = new Map<string, string>()
  lines.forEach((line, index) => {
    const match = /^([A-Z_]+)=(.*)$/.exec(line)
    if (!match) return
    listed.set(match[1] as string, match[2] as string)
    // A variable line belongs to the block under the nearest comment, with no blank line between.
    let above = index - 1
    while (above >= 0 && /^[A-Z_]+=/.test(lines[above] as string)) above--
    t.match(lines[above], /^# \S/, `${match[1]} is explained by a comment`)
  })
  const properties = configSchema.properties as Record<string, { default?: unknown }>
  t.same([...listed.keys()].sort(), Object.keys(properties).sort(), 'exactly the schema\'s variables')
  // Deliberately not the default: a copy of the file makes a development server, and over plain
  // HTTP a Secure-only cookie (the default, true) would refuse every login (env-example.test.ts).
  const forDevelopment: Record<string, string> = { SESSION_COOKIE_SECURE: 'auto' }
  for (const [name, schema] of Object.entries(properties)) {
    if (schema.default === undefined) continue
    const value = listed.get(name)
    const expected = forDevelopment[name] ?? String(schema.default)
    t.ok(value === '' || value === expected, `${name}=${value}: ${forDevelopment[name] ? 'the development value' : 'the default'} (${expected}) or empty`)
  }
  t.doesNotThrow(() => loadConfig(parseEnv(lines.join('\n'))), 'and its values are valid')
})
