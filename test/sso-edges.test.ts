import { decodeJwt } from 'jose'
import t, { type Test } from 'tap'
import { defaultAccountClaims, generateSigningKey } from '../scripts/sso/dev-provider.js'
import { CLOCK_TOLERANCE_S } from '../src/auth/sso/oidc-client.js'
import { httpRequest, sessionCookie, type HttpResponse, type RequestOptions } from './helper.js'
import { captureLog } from './support/log-capture.js'
import { loginThroughProvider, logoutAtProvider } from './support/sso-login.js'
import { idOf, logoutToken, rows, tamperIdTokens, tokensOf } from './support/sso-tokens.js'
import { startSsoStack } from './support/sso.js'

// Edges of single sign-on that test/sso.test.ts leaves open: where the user's name comes from when
// the provider sends no preferred_username, the ID token's clock tolerance from the accepting side,
// and no credential in the log over a whole scenario.

async function userOf (base: string, cookie: string): Promise<Record<string, string> | undefined> {
  const res = await httpRequest(`${base}/session`, { headers: { cookie } })
  return JSON.parse(res.body).user
}

/**
 * Puts `wrap` in front of fetch (the tests' browser and the provider's back-channel calls use it)
 * until teardown; `wrap` gets the request's URL and init and the real fetch.
 */
function wrapFetch (t: Test, wrap: (url: string, init: RequestInit | undefined, real: typeof fetch) => Promise<Response>) {
  const realFetch = globalThis.fetch
  globalThis.fetch = async (input, init) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url
    return await wrap(url, init, realFetch)
  }
  t.teardown(() => { globalThis.fetch = realFetch })
}

t.test('the user\'s name: preferred_username, else email, else sub', async (t) => {
  // Accounts by login name (their sub), each without some of the claims the default account has.
  const accounts: Record<string, Record<string, unknown>> = {
    'all-three': { preferred_username: 'Pat', email: 'pat.mail@example.test' },
    'mail-only': { email: 'nina.mail@example.test', email_verified: true, name: 'Nina N.' },
    'empty-username': { preferred_username: '', email: 'eli.mail@example.test' },
    bare: { name: 'Not Used' }
  }
  const { provider, db, instances: [instance] } = await startSsoStack(t, {
    provider: { accountClaims: (id) => accounts[id] ?? defaultAccountClaims(id) }
  })
  const base = instance!.base
  const expected: Array<[string, string, string]> = [
    ['all-three', 'Pat', 'preferred_username first, though email and sub differ from it'],
    ['mail-only', 'nina.mail@example.test', 'no preferred_username: the email, not the sub (nor the name claim)'],
    ['empty-username', 'eli.mail@example.test', 'an empty preferred_username counts as none'],
    ['bare', 'bare', 'neither preferred_username nor email: the sub']
  ]
  for (const [sub, name, why] of expected) {
    const login = await loginThroughProvider(base, { username: sub })
    t.equal(login.callbackStatus, 302, `${sub}: logged in`)
    const [tokens] = await tokensOf(db, sub)
    const claims = decodeJwt(tokens!.idToken)
    t.same([claims.preferred_username, claims.email], [accounts[sub]!.preferred_username, accounts[sub]!.email], `${sub}: the ID token has the account's claims`)
    t.same(await userOf(base, login.appCookie), { name, sub, iss: provider.issuer }, `${sub}: ${why}`)
  }
})

t.test(`an ID token expired less than the clock tolerance (${CLOCK_TOLERANCE_S} s) ago is accepted; one past it is not`, async (t) => {
  t.equal(CLOCK_TOLERANCE_S, 30, 'the tolerance this test brackets')
  const { provider, db, instances: [instance] } = await startSsoStack(t)
  const base = instance!.base

  await t.test('expired 10 s ago: logged in', async (t) => {
    tamperIdTokens(t, provider, (claims) => { claims.exp = Math.floor(Date.now() / 1000) - 10; claims.iat = (claims.exp as number) - 60 })
    const login = await loginThroughProvider(base, { username: 'ann' })
    t.equal(login.callbackStatus, 302, 'the callback accepts it')
    t.same(await userOf(base, login.appCookie), { name: 'ann', sub: 'ann', iss: provider.issuer })
    const [tokens] = await tokensOf(db, 'ann')
    t.ok(tokens && decodeJwt(tokens.idToken).exp! < Date.now() / 1000, 'and it is the expired ID token that was accepted')
  })

  await t.test('expired 45 s ago: refused', async (t) => {
    tamperIdTokens(t, provider, (claims) => { claims.exp = Math.floor(Date.now() / 1000) - 45; claims.iat = (claims.exp as number) - 60 })
    const login = await loginThroughProvider(base, { username: 'bob' })
    t.equal(login.callbackStatus, 400, 'the callback refuses it')
    t.same(await tokensOf(db, 'bob'), [], 'bob is not logged in')
  })
})

t.test('no token, code or session id in the log or in an answer over a whole scenario', async (t) => {
  const log = captureLog()
  const { provider, db, instances: [instance] } = await startSsoStack(t, {
    // trace: the most the server ever writes.
    env: { LOG_LEVEL: 'trace' },
    app: {
      logger: log.logger,
      sessionRoutes: async (scope) => {
        // A consumer route that uses the access token and does not hand it out.
        scope.get('/api/call', async (request) => ({ called: (await scope.sso!.accessToken(request)).length > 0 }))
      }
    }
  })
  const base = instance!.base

  /** Every value the test sees that must stay out of the log and the answers, with what it is. */
  const secrets = new Map<string, string>()
  const keep = (what: string, value: string | null | undefined) => {
    if (typeof value !== 'string' || value.length < 8) throw new Error(`${what}: ${JSON.stringify(value)} is not a credential`)
    secrets.set(value, what)
  }
  const keepTokens = async (sub: string) => {
    for (const tokens of await tokensOf(db, sub)) {
      keep(`${sub}'s ID token`, tokens.idToken)
      keep(`${sub}'s access token`, tokens.accessToken)
      keep(`${sub}'s refresh token`, tokens.refreshToken)
    }
  }
  const keepSessionIds = async () => { for (const id of (await rows(db)).keys()) keep('a session id', id) }

  /** The app's answers (Location, body, cookies), whichever client asked: fetch or httpRequest. */
  const answers: Array<{ what: string, location?: string, body: string, setCookie: string[] }> = []
  wrapFetch(t, async (url, init, real) => {
    // The provider's back-channel logout token, sent with fetch to the app.
    if (url === `${base}/auth/backchannel-logout`) keep('the provider\'s logout token', new URLSearchParams(String(init?.body)).get('logout_token'))
    const response = await real(url, init)
    if (url.startsWith(`${base}/`)) {
      answers.push({ what: `${init?.method ?? 'GET'} ${new URL(url).pathname}`, location: response.headers.get('location') ?? undefined, body: await response.clone().text(), setCookie: response.headers.getSetCookie() })
    }
    return response
  })
  const request = async (path: string, options: RequestOptions = {}): Promise<HttpResponse> => {
    const res = await httpRequest(`${base}${path}`, options)
    const setCookie = res.headers['set-cookie'] ?? []
    answers.push({ what: `${options.method ?? 'GET'} ${path.split('?')[0]}`, location: res.headers.location, body: res.body, setCookie })
    return res
  }
  const postLogoutToken = async (token: string) => {
    keep('a logout token', token)
    return await request('/auth/backchannel-logout', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ logout_token: token }).toString() })
  }

  // Login, from a session of the browser's own.
  const anonymous = sessionCookie((await request('/session')).headers['set-cookie']) as string
  keep('the anonymous session id', idOf(anonymous))
  const ann = await loginThroughProvider(base, { username: 'ann', appCookie: anonymous })
  t.equal(ann.callbackStatus, 302, 'ann logged in')
  keep('ann\'s authorization code', new URL(ann.callbackUrl).searchParams.get('code'))
  keep('ann\'s session id', idOf(ann.appCookie))
  await keepTokens('ann')
  t.equal((await request('/session/all', { headers: { cookie: ann.appCookie } })).status, 200)

  // A refresh, through a consumer route.
  const [before] = await tokensOf(db, 'ann')
  await db.pool.query('UPDATE sessions SET data = JSON_SET(data, \'$.sso.accessTokenExpiresAt\', ?) WHERE JSON_VALUE(data, \'$.user.sub\') = \'ann\'', [Date.now() + 5000])
  t.same(JSON.parse((await request('/api/call', { headers: { cookie: ann.appCookie } })).body), { called: true })
  const [refreshed] = await tokensOf(db, 'ann')
  t.not(refreshed!.accessToken, before!.accessToken, 'the access token was refreshed')
  await keepTokens('ann')

  // A state that is not the login's.
  const forgedState = await loginThroughProvider(base, { username: 'bob', stopBeforeCallback: true })
  keep('bob\'s authorization code', new URL(forgedState.callbackUrl).searchParams.get('code'))
  keep('bob\'s pre-login session id', idOf(forgedState.appCookie))
  const forged = new URL(forgedState.callbackUrl)
  forged.searchParams.set('state', 'not-the-state')
  t.equal((await request(`${forged.pathname}${forged.search}`, { headers: { cookie: forgedState.appCookie } })).status, 400, 'a wrong state: 400')

  // A replayed code: the pre-login row brought back so that only the provider refuses it.
  const cat = await loginThroughProvider(base, { username: 'cat', stopBeforeCallback: true })
  keep('cat\'s authorization code', new URL(cat.callbackUrl).searchParams.get('code'))
  keep('cat\'s pre-login session id', idOf(cat.appCookie))
  const preLogin = (await rows(db)).get(idOf(cat.appCookie))
  const callbackPath = cat.callbackUrl.slice(base.length)
  const first = await request(callbackPath, { headers: { cookie: cat.appCookie } })
  t.equal(first.status, 302, 'cat logged in')
  const catCookie = sessionCookie(first.headers['set-cookie']) as string
  keep('cat\'s session id', idOf(catCookie))
  await keepTokens('cat')
  await db.pool.query('INSERT INTO sessions (session_id, expires, data) VALUES (?, UNIX_TIMESTAMP() + 3600, ?)', [idOf(cat.appCookie), JSON.stringify(preLogin)])
  const replay = await request(callbackPath, { headers: { cookie: cat.appCookie } })
  t.equal(replay.status, 400, 'the code again: 400')
  t.match(JSON.parse(replay.body).message, /invalid_grant/, 'refused by the provider')

  // dan stays logged in for the back-channel logout below.
  const dan = await loginThroughProvider(base, { username: 'dan' })
  keep('dan\'s authorization code', new URL(dan.callbackUrl).searchParams.get('code'))
  keep('dan\'s session id', idOf(dan.appCookie))
  await keepTokens('dan')
  await keepSessionIds()

  // RP-initiated logout, and the provider's back-channel logout that follows it.
  const logout = await request('/auth/logout', { method: 'POST', headers: { cookie: ann.appCookie, origin: base, 'content-type': 'application/x-www-form-urlencoded' }, body: '' })
  t.equal(logout.status, 303)
  const endSession = String(logout.headers.location)
  // The one place a token leaves the server, as OpenID Connect RP-Initiated Logout 1.0 has it: the
  // ID token as id_token_hint in the Location to the provider's end-session endpoint.
  t.equal(new URL(endSession).searchParams.get('id_token_hint'), refreshed!.idToken, 'the ID token as id_token_hint, to the provider')
  t.ok(endSession.startsWith(`${provider.issuer}/session/end?`))
  const backchannel = new Promise((resolve) => provider.provider.once('backchannel.success', resolve))
  t.equal(await logoutAtProvider(endSession, ann.providerCookies), `${base}/`, 'back from the provider')
  await backchannel
  t.ok([...secrets.values()].includes('the provider\'s logout token'), 'the provider\'s logout token was seen')

  // Logout tokens: refused, then one that ends dan's login, then that one again.
  const danSid = (await tokensOf(db, 'dan'))[0]?.sid
  const stranger = { ...await generateSigningKey(), kid: provider.signingKey.kid }
  t.equal((await postLogoutToken(await logoutToken(provider, { sub: 'dan', sid: danSid }, { key: stranger }))).status, 400, 'signed by another key: 400')
  const now = Math.floor(Date.now() / 1000)
  t.equal((await postLogoutToken(await logoutToken(provider, { sub: 'dan', iat: now - 100, exp: now - 60 }))).status, 400, 'expired: 400')
  const valid = await logoutToken(provider, { sub: 'dan', sid: danSid })
  t.equal((await postLogoutToken(valid)).status, 200, 'dan\'s login ended')
  t.equal((await postLogoutToken(valid)).status, 400, 'the same token again: 400')
  t.equal(await userOf(base, dan.appCookie), undefined, 'dan is logged out')

  // Every session id the app ever set in a cookie.
  for (const { setCookie } of answers) for (const line of setCookie) if (idOf(line.split(';')[0] ?? '')) keep('a session id from a cookie', idOf(line.split(';')[0] ?? ''))

  const messages = log.entries().map((entry) => entry.msg)
  for (const msg of ['login', 'sso login failed', 'back-channel logout refused', 'back-channel logout']) {
    t.ok(messages.includes(msg), `the scenario was logged: "${msg}"`)
  }
  t.ok(secrets.size >= 20, `${secrets.size} values collected`)
  const text = log.text()
  t.match(text, /\/auth\/callback\?code=\[redacted\]&state=\[redacted\]/, 'the callbacks were logged, their code and state redacted')
  const inLog = [...secrets].filter(([value]) => text.includes(value)).map(([, what]) => what)
  t.same(inLog, [], 'none of them in the log')
  // The Location to the end-session endpoint is looked at without its id_token_hint, and nothing else is.
  const withoutHint = new URL(endSession)
  withoutHint.searchParams.delete('id_token_hint')
  for (const answer of answers) {
    const where = [answer.body, answer.location === endSession ? withoutHint.href : answer.location ?? '']
    const found = [...secrets].filter(([value]) => where.some((part) => part.includes(value))).map(([, what]) => what)
    t.same(found, [], `none in the body or Location of ${answer.what}`)
  }
})
