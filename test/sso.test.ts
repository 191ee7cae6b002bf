import { once } from 'node:events'
import { decodeJwt, type JWK, type JWTPayload } from 'jose'
import t, { type Test } from 'tap'
import { generateSigningKey } from '../scripts/sso/dev-provider.js'
import { BACKCHANNEL_LOGOUT_EVENT } from '../src/auth/sso/logout-token.js'
import { Client, httpRequest, listen, sessionCookie, type TestDatabase } from './helper.js'
import { loginAs, writeUsersFile } from './support/accounts.js'
import { captureLog } from './support/log-capture.js'
import { loginThroughProvider } from './support/sso-login.js'
import { idOf, interceptFetch, logoutToken, rows, tamperIdTokens, tokensOf } from './support/sso-tokens.js'
import { startSsoStack } from './support/sso.js'

/** A client of `base` holding the cookie a login left. */
function browserWith (base: string, cookie: string): Client {
  const client = new Client(base)
  client.cookie = cookie
  return client
}

async function sessionOf (client: Client): Promise<{ authenticated: boolean, user?: Record<string, string> }> {
  const res = await client.request('/session')
  return JSON.parse(res.body)
}

/** Sets when the stored access token of `sub`'s sessions expires. */
async function setExpiry (db: TestDatabase, sub: string, at: number): Promise<void> {
  await db.pool.query('UPDATE sessions SET data = JSON_SET(data, \'$.sso.accessTokenExpiresAt\', ?) WHERE JSON_VALUE(data, \'$.user.sub\') = ?', [at, sub])
}

const timedOut = async (): Promise<Response> => { throw new DOMException('The operation was aborted due to timeout', 'TimeoutError') }

function postLogoutToken (base: string, token: string | undefined) {
  const body = token === undefined ? '' : new URLSearchParams({ logout_token: token }).toString()
  return httpRequest(`${base}/auth/backchannel-logout`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body })
}

t.test('the whole flow: a new session id with {name, sub, iss}, tokens on the server only, none in answers or logs', async (t) => {
  const log = captureLog()
  const { provider, db, instances: [instance] } = await startSsoStack(t, { env: { LOG_LEVEL: 'info' }, app: { logger: log.logger } })
  const base = instance!.base

  const anonymous = new Client(base)
  await anonymous.request('/session')
  const before = anonymous.cookie as string
  const login = await loginThroughProvider(base, { username: 'ann', returnTo: '/account?tab=sessions#top', appCookie: before })
  t.equal(login.callbackStatus, 302)
  t.equal(login.location, `${base}/account?tab=sessions#top`, 'back where the login began, on this site')
  t.not(idOf(login.appCookie), idOf(before), 'the session id changed at login')
  t.notOk((await rows(db)).has(idOf(before)), 'the pre-login session is gone')

  const browser = browserWith(base, login.appCookie)
  const session = await browser.request('/session')
  t.same(JSON.parse(session.body).user, { name: 'ann', sub: 'ann', iss: provider.issuer }, 'the user as {name, sub, iss}')
  const list = await browser.request('/session/all')
  t.equal(list.status, 200)

  const [tokens] = await tokensOf(db, 'ann')
  t.ok(tokens?.idToken && tokens.accessToken && tokens.refreshToken && tokens.sid, 'the tokens are in the session row')
  t.equal(decodeJwt(tokens!.idToken).sid, tokens!.sid, 'with the provider session id')
  const secrets = [tokens!.idToken, tokens!.accessToken, tokens!.refreshToken as string, new URL(login.callbackUrl).searchParams.get('code') as string]
  for (const [what, text] of [['GET /session', session.body], ['GET /session/all', list.body], ['the cookie', login.appCookie], ['the log', log.text()]]) {
    t.notOk(secrets.some((secret) => text!.includes(secret)), `no token or code in ${what}`)
  }
  t.ok(log.entries().some((entry) => entry.msg === 'login' && entry.user === 'ann'), 'the login is logged, by name')
  t.match(log.text(), /\/auth\/callback\?code=\[redacted\]/, 'the callback URL is logged with its code redacted')
})

t.test('a callback URL that misses the route is logged with its code redacted too', async (t) => {
  const log = captureLog()
  const { instances: [instance] } = await startSsoStack(t, { env: { LOG_LEVEL: 'info' }, app: { logger: log.logger } })
  const res = await httpRequest(`${instance!.base}/auth/callback/?code=the-one-time-code&state=the-state`)
  t.equal(res.status, 404)
  t.notMatch(log.text(), /the-one-time-code|the-state/, 'neither the code nor the state in the log')
  t.match(log.text(), /code=\[redacted\]&state=\[redacted\] not found/, 'and the rest of the message kept')
})

t.test('pending logins and tokens of the wrong shape in a row are not used', async (t) => {
  const { db, instances: [instance] } = await startSsoStack(t)
  const base = instance!.base
  const started = await loginThroughProvider(base, { username: 'ann', stopBeforeCallback: true })
  await db.pool.query('UPDATE sessions SET data = JSON_REMOVE(data, \'$.ssoLogin.startedAt\') WHERE session_id = ?', [idOf(started.appCookie)])
  const callback = await httpRequest(started.callbackUrl, { headers: { cookie: started.appCookie } })
  t.equal(callback.status, 400, 'a pending login without its start time is no pending login')
  t.match(JSON.parse(callback.body).message, /no login is in progress/)

  const login = await loginThroughProvider(base, { username: 'ann' })
  await db.pool.query('UPDATE sessions SET data = JSON_SET(data, \'$.sso.refreshToken\', 42) WHERE session_id = ?', [idOf(login.appCookie)])
  t.equal((await sessionOf(browserWith(base, login.appCookie))).authenticated, false, 'a session whose tokens are not strings is not used')
})

t.test('returnTo leads only to this site', async (t) => {
  const { instances: [instance] } = await startSsoStack(t)
  const base = instance!.base
  const elsewhere = [
    'https://evil.example/', '//evil.example/x', '/\\evil.example', '\\\\evil.example', 'evil.example', '/\r\nSet-Cookie:x', 'javascript:alert(1)', '/a\tb',
    // Paths that become //evil.example once their dot segments are resolved.
    '/.//evil.example/x', '/..//evil.example/', '/%2e//evil.example', '/%2e%2e//evil.example', '/a/..//evil.example', '/././/evil.example'
  ]
  for (const returnTo of elsewhere) {
    const res = await httpRequest(`${base}/auth/login?returnTo=${encodeURIComponent(returnTo)}`)
    t.equal(res.status, 400, `${JSON.stringify(returnTo)} refused`)
    t.match(JSON.parse(res.body).message, /returnTo must be a path on this site/)
  }
  const fine = await httpRequest(`${base}/auth/login?returnTo=${encodeURIComponent('/docs?x=1')}`)
  t.equal(fine.status, 302, 'a path of this site is accepted')
  const authorize = new URL(String(fine.headers.location))
  t.equal(authorize.searchParams.get('code_challenge_method'), 'S256', 'PKCE S256')
  t.ok(authorize.searchParams.get('state') && authorize.searchParams.get('nonce'), 'state and nonce')
  t.equal(authorize.searchParams.get('redirect_uri'), `${base}/auth/callback`, 'the redirect URI from PUBLIC_URL')
  t.equal(authorize.searchParams.get('scope'), 'openid profile email')
  t.equal(fine.headers['cache-control'], 'no-store')
})

t.test('callback refusals: 400 with a clear message and no user, no tokens stored', async (t) => {
  const { provider, db, instances: [instance] } = await startSsoStack(t)
  const base = instance!.base

  async function refused (t: Test, callbackUrl: string, cookie: string, message: RegExp) {
    const res = await httpRequest(callbackUrl, { headers: { cookie } })
    t.equal(res.status, 400)
    t.match(JSON.parse(res.body).message, message)
    const stored = [...(await rows(db)).values()]
    t.notOk(stored.some((data) => data.user !== undefined || data.sso !== undefined), 'no session has a user or tokens')
  }

  await t.test('state mismatch', async (t) => {
    const started = await loginThroughProvider(base, { username: 'ann', stopBeforeCallback: true })
    const forged = new URL(started.callbackUrl)
    forged.searchParams.set('state', 'not-the-state')
    await refused(t, forged.href, started.appCookie, /state/)
    await refused(t, started.callbackUrl, started.appCookie, /no login is in progress/)
    t.pass('and the login it belonged to cannot be completed afterwards: one attempt per login')
  })

  await t.test('a callback in a browser that never started a login (login CSRF)', async (t) => {
    const victim = new Client(base)
    await victim.request('/session')
    const attackers = await loginThroughProvider(base, { username: 'mallory', stopBeforeCallback: true })
    await refused(t, attackers.callbackUrl, victim.cookie as string, /no login is in progress/)
  })

  await t.test('a replayed code: the callback URL used a second time', async (t) => {
    const started = await loginThroughProvider(base, { username: 'ann', stopBeforeCallback: true })
    // Keep the pre-login row to bring it back: the replay then meets a matching state and
    // verifier, and only the provider's one-use code stands in the way.
    const preLogin = (await rows(db)).get(idOf(started.appCookie))
    const first = await httpRequest(started.callbackUrl, { headers: { cookie: started.appCookie } })
    t.equal(first.status, 302, 'the first use logs in')
    await db.pool.query('DELETE FROM sessions')
    await db.pool.query('INSERT INTO sessions (session_id, expires, data) VALUES (?, UNIX_TIMESTAMP() + 3600, ?)', [idOf(started.appCookie), JSON.stringify(preLogin)])
    await refused(t, started.callbackUrl, started.appCookie, /invalid_grant/)
  })

  await t.test('a login left for longer than the window', async (t) => {
    const started = await loginThroughProvider(base, { username: 'ann', stopBeforeCallback: true })
    await db.pool.query('UPDATE sessions SET data = JSON_SET(data, \'$.ssoLogin.startedAt\', 0) WHERE session_id = ?', [idOf(started.appCookie)])
    await refused(t, started.callbackUrl, started.appCookie, /took too long/)
  })

  await t.test('an error from the provider (the user cancelled)', async (t) => {
    const started = await loginThroughProvider(base, { username: 'ann', stopBeforeCallback: true })
    const state = new URL(started.callbackUrl).searchParams.get('state') as string
    const error = new URLSearchParams({ error: 'access_denied', state, iss: provider.issuer })
    await refused(t, `${base}/auth/callback?${error}`, started.appCookie, /access_denied/)
  })

  const idTokenChanges: Array<[string, (claims: JWTPayload) => void, RegExp, JWK?]> = [
    ['a wrong nonce', (claims) => { claims.nonce = 'another-nonce' }, /nonce/],
    ['another audience', (claims) => { claims.aud = 'another-client' }, /aud/],
    ['another issuer', (claims) => { claims.iss = 'https://evil.example' }, /iss/],
    ['an expiry past the clock tolerance', (claims) => { claims.exp = Math.floor(Date.now() / 1000) - 60; claims.iat = (claims.exp as number) - 60 }, /"exp"/]
  ]
  for (const [what, change, message] of idTokenChanges) {
    await t.test(`an ID token with ${what}`, async (t) => {
      tamperIdTokens(t, provider, change)
      const started = await loginThroughProvider(base, { username: 'ann', stopBeforeCallback: true })
      await refused(t, started.callbackUrl, started.appCookie, message)
    })
  }

  await t.test('an ID token signed with a key that is not the provider\'s', async (t) => {
    tamperIdTokens(t, provider, () => {}, { ...await generateSigningKey(), kid: provider.signingKey.kid })
    const started = await loginThroughProvider(base, { username: 'ann', stopBeforeCallback: true })
    await refused(t, started.callbackUrl, started.appCookie, /signature/)
  })
})

t.test('the provider down at start and during a login: 503 with Retry-After, the server stays up and recovers', async (t) => {
  const { provider, db, instances: [instance] } = await startSsoStack(t)
  const base = instance!.base
  const started = await loginThroughProvider(base, { username: 'ann', stopBeforeCallback: true })
  await provider.stop()
  const callback = await httpRequest(started.callbackUrl, { headers: { cookie: started.appCookie } })
  t.equal(callback.status, 503, 'the code exchange with a provider that is gone: 503')
  t.equal(callback.headers['retry-after'], '5')
  t.notOk([...(await rows(db)).values()].some((data) => data.user), 'nobody logged in')
  t.ok((await rows(db)).get(idOf(started.appCookie))?.ssoLogin, 'the pending login is still in the pre-login session')
  await provider.start()
  const again = await httpRequest(started.callbackUrl, { headers: { cookie: started.appCookie } })
  t.equal(again.status, 302, 'the provider is back: the same callback logs in')
  t.equal(again.headers.location, `${base}/`)
  const cookie = sessionCookie(again.headers['set-cookie']) ?? ''
  t.ok(cookie, 'a session cookie')
  t.not(idOf(cookie), idOf(started.appCookie), 'with a new session id')
  t.same((await sessionOf(browserWith(base, cookie))).user, { name: 'ann', sub: 'ann', iss: provider.issuer }, 'ann is logged in')
  t.notOk((await rows(db)).has(idOf(started.appCookie)), 'the pre-login session is gone')

  // A server whose provider does not answer at start.
  const { buildApp } = await import('../src/app.js')
  await provider.stop()
  const app = await buildApp({ env: { ...db.env, NODE_ENV: 'test', LOG_LEVEL: 'silent', SESSION_SECRET: 'x'.repeat(40), SESSION_COOKIE_SECURE: 'false', PUBLIC_URL: base, OIDC_ISSUER: provider.issuer, OIDC_CLIENT_ID: provider.clientId, OIDC_CLIENT_SECRET: provider.clientSecret } })
  t.teardown(() => app.close())
  const server = await listen(app)
  const down = await httpRequest(`${server}/auth/login`)
  t.equal(down.status, 503, 'SSO answers 503 while discovery fails')
  t.equal(down.headers['retry-after'], '5')
  t.match(JSON.parse(down.body).message, /identity provider is unreachable/)
  t.equal((await httpRequest(`${server}/health/live`)).status, 200, 'the rest of the server works')
  await provider.start()
  let status = 503
  for (let attempt = 0; attempt < 50 && status === 503; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 100))
    status = (await httpRequest(`${server}/auth/login`)).status
  }
  t.equal(status, 302, 'once the provider answers, login works without a restart')
})

t.test('a provider that times out or answers 5xx is unavailable (503), not a refusal: nothing is ended', async (t) => {
  const { provider, db, instances: [instance] } = await startSsoStack(t, {
    app: { sessionRoutes: async (scope) => { scope.get('/api/token', async (request) => ({ token: await scope.sso!.accessToken(request) })) } }
  })
  const base = instance!.base
  const login = await loginThroughProvider(base, { username: 'ann' })
  const started = await loginThroughProvider(base, { username: 'ann', stopBeforeCallback: true })
  await t.test('the token endpoint times out', async (t) => {
    interceptFetch(t, `${provider.issuer}/token`, timedOut)
    const callback = await httpRequest(started.callbackUrl, { headers: { cookie: started.appCookie } })
    t.equal(callback.status, 503, 'the code exchange: 503')
    await setExpiry(db, 'ann', Date.now() + 5000)
    const refresh = await browserWith(base, login.appCookie).request('/api/token')
    t.equal(refresh.status, 503, 'the refresh: 503')
    t.equal((await sessionOf(browserWith(base, login.appCookie))).authenticated, true, 'the session lives on')
  })
  const notOAuth: Array<[string, () => Response]> = [
    ['a proxy\'s 502 page', () => new Response('<html>Bad Gateway</html>', { status: 502, headers: { 'content-type': 'text/html' } })],
    ['a rate limiter\'s 429', () => new Response('slow down', { status: 429, headers: { 'content-type': 'text/plain' } })],
    ['a captive portal\'s 200 page', () => new Response('<html>log in to the wifi</html>', { status: 200, headers: { 'content-type': 'text/html' } })],
    ['a 404 page', () => new Response('<html>not here</html>', { status: 404, headers: { 'content-type': 'text/html' } })]
  ]
  for (const [what, answer] of notOAuth) {
    await t.test(`the token endpoint answers with ${what}: 503 for the refresh and the callback, the session kept`, async (t) => {
      interceptFetch(t, `${provider.issuer}/token`, async () => answer())
      t.equal((await browserWith(base, login.appCookie).request('/api/token')).status, 503)
      t.equal((await sessionOf(browserWith(base, login.appCookie))).authenticated, true, 'the session lives on')
      t.equal((await httpRequest(started.callbackUrl, { headers: { cookie: started.appCookie } })).status, 503)
    })
  }
  await t.test('this client misconfigured (a rotated secret): 500 logged as an error, nobody logged out', async (t) => {
    interceptFetch(t, `${provider.issuer}/token`, async () => Response.json({ error: 'invalid_client', error_description: 'client authentication failed' }, { status: 401 }))
    const refresh = await browserWith(base, login.appCookie).request('/api/token')
    t.equal(refresh.status, 500)
    t.match(JSON.parse(refresh.body).message, /misconfigured: invalid_client.*OIDC_CLIENT_SECRET/)
    t.equal((await sessionOf(browserWith(base, login.appCookie))).authenticated, true, 'the session lives on')
    t.equal((await httpRequest(started.callbackUrl, { headers: { cookie: started.appCookie } })).status, 500, 'the callback too')
  })
  await t.test('temporarily_unavailable in the callback URL: 400, since anybody can write it there', async (t) => {
    const pending = await loginThroughProvider(base, { username: 'ann', stopBeforeCallback: true })
    const state = new URL(pending.callbackUrl).searchParams.get('state') as string
    const error = new URLSearchParams({ error: 'temporarily_unavailable', state, iss: provider.issuer })
    const res = await httpRequest(`${base}/auth/callback?${error}`, { headers: { cookie: pending.appCookie } })
    t.equal(res.status, 400)
    t.match(JSON.parse(res.body).message, /temporarily_unavailable/)
  })
  const troubled: Array<[string, () => Response, number]> = [
    ['temporarily_unavailable from the token endpoint itself', () => Response.json({ error: 'temporarily_unavailable' }, { status: 400 }), 503],
    ['a JSON body cut off', () => new Response('{"access_token":"abc', { status: 200, headers: { 'content-type': 'application/json' } }), 503],
    ['a 401 page that is not OAuth (a wrong secret behind a gateway)', () => new Response('Unauthorized', { status: 401, headers: { 'content-type': 'text/plain' } }), 500]
  ]
  for (const [what, answer, status] of troubled) {
    await t.test(`${what}: ${status}, the session kept`, async (t) => {
      interceptFetch(t, `${provider.issuer}/token`, async () => answer())
      t.equal((await browserWith(base, login.appCookie).request('/api/token')).status, status)
      t.equal((await sessionOf(browserWith(base, login.appCookie))).authenticated, true, 'the session lives on')
    })
  }
  await t.test('the keys cannot be fetched for a logout token', async (t) => {
    interceptFetch(t, `${provider.issuer}/jwks`, async () => new Response('oops', { status: 500 }))
    const res = await postLogoutToken(base, await logoutToken(provider))
    t.equal(res.status, 503, 'the provider\'s trouble: 503, which the provider retries')
    t.equal((await sessionOf(browserWith(base, login.appCookie))).authenticated, true, 'nothing ended')
  })
  await t.test('the replay check stuck behind a lock: 503 within the store\'s deadline, and the retry after it is not a replay', async (t) => {
    const kim = await loginThroughProvider(base, { username: 'kim' })
    const sid = (await rows(db)).get(idOf(kim.appCookie))?.sso?.sid as string
    const token = await logoutToken(provider, { sub: 'kim', sid })
    const locker = await db.pool.getConnection()
    t.teardown(() => locker.release())
    await locker.query('LOCK TABLES session_leases WRITE')
    const started = Date.now()
    const stuck = await postLogoutToken(base, token)
    t.equal(stuck.status, 503, 'not done')
    t.ok(Date.now() - started < 2000, `answered in ${Date.now() - started} ms`)
    await locker.query('UNLOCK TABLES')
    t.equal((await postLogoutToken(base, token)).status, 200, 'the provider\'s retry of the same token is not a replay')
    t.equal((await sessionOf(browserWith(base, kim.appCookie))).authenticated, false, 'and ends the session')
    t.equal((await postLogoutToken(base, token)).status, 400, 'a third use is a replay')
  })

  await t.test('a token that could not be acted on (the store failed) can be sent again', async (t) => {
    const store = instance!.app.sessionStore
    const sessionsOf = store.sessionsOf.bind(store)
    store.sessionsOf = async () => { throw new Error('the store failed') }
    t.teardown(() => { store.sessionsOf = sessionsOf })
    const sid = (await rows(db)).get(idOf(login.appCookie))?.sso?.sid as string
    const token = await logoutToken(provider, { sid })
    t.equal((await postLogoutToken(base, token)).status, 500, 'not done')
    store.sessionsOf = sessionsOf
    t.equal((await postLogoutToken(base, token)).status, 200, 'the provider\'s retry of the same token is not a replay')
    t.equal((await sessionOf(browserWith(base, login.appCookie))).authenticated, false, 'and ends the session')
  })
})

t.test('refresh: once for many requests at once; a refused refresh ends the session', async (t) => {
  const { provider, db, instances: [instance] } = await startSsoStack(t, {
    app: {
      sessionRoutes: async (scope) => {
        scope.get('/api/token', async (request) => ({ token: await scope.sso!.accessToken(request) }))
        scope.get('/api/upstream-down', async (request, reply) => {
          // A change the failed answer must not save.
          request.raw.session!.state = { changedBy: 'a failed request' }
          await scope.sso!.accessToken(request)
          return reply.code(502).send({ statusCode: 502, error: 'Bad Gateway', message: 'the API behind this route is down' })
        })
      }
    }
  })
  const base = instance!.base
  const login = await loginThroughProvider(base, { username: 'ann' })
  const browser = browserWith(base, login.appCookie)
  const [before] = await tokensOf(db, 'ann')
  t.equal(JSON.parse((await browser.request('/api/token')).body).token, before!.accessToken, 'a token far from expiry is handed out as it is')
  // The access token is about to expire.
  const nearExpiry = () => setExpiry(db, 'ann', Date.now() + 5000)
  await nearExpiry()

  let refreshes = 0
  const counter = (ctx: { oidc: { params?: { grant_type?: unknown } } }) => { if (ctx.oidc.params?.grant_type === 'refresh_token') refreshes++ }
  provider.provider.on('grant.success', counter)
  const answers = await Promise.all(Array.from({ length: 10 }, () => browser.request('/api/token')))
  t.same(answers.map((res) => res.status), Array(10).fill(200))
  const handedOut = new Set(answers.map((res) => JSON.parse(res.body).token))
  t.equal(handedOut.size, 1, 'every request got the same token')
  t.not([...handedOut][0], before!.accessToken, 'a new one')
  t.equal(refreshes, 1, 'one refresh at the provider for ten requests')
  const [after] = await tokensOf(db, 'ann')
  t.equal(after!.accessToken, [...handedOut][0], 'the new tokens are saved in the session')

  // The provider revokes the grant (an administrator ended the login there).
  const revoke = await httpRequest(`${provider.issuer}/token/revocation`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${provider.clientId}:${provider.clientSecret}`).toString('base64')}` },
    body: new URLSearchParams({ token: after!.refreshToken as string, token_type_hint: 'refresh_token' }).toString()
  })
  t.equal(revoke.status, 200, 'revoked at the provider')
  t.equal(JSON.parse((await browser.request('/api/token')).body).token, after!.accessToken, 'until the access token nears its expiry, nothing is asked')
  await nearExpiry()
  const refused = await browser.request('/api/token')
  t.equal(refused.status, 401)
  t.match(JSON.parse(refused.body).message, /identity provider ended this login/)
  t.equal((await sessionOf(browser)).authenticated, false, 'the session ended with it')
  t.same(await tokensOf(db, 'ann'), [], 'no row of ann is left')

  const local = browserWith(base, '')
  t.equal((await local.request('/api/token')).status, 401, 'a session without an SSO login gets 401')

  await t.test('a refresh that another instance did first: its tokens are used, the session kept', async (t) => {
    const browser = browserWith(base, (await loginThroughProvider(base, { username: 'cat' })).appCookie)
    await setExpiry(db, 'cat', Date.now() + 5000)
    // Meanwhile another instance refreshed and saved; the provider rotated the refresh token, so
    // the one this request holds is spent.
    interceptFetch(t, `${provider.issuer}/token`, async () => {
      await db.pool.query('UPDATE sessions SET data = JSON_SET(data, \'$.sso.accessToken\', \'from-the-other-instance\', \'$.sso.refreshToken\', \'rotated\', \'$.sso.accessTokenExpiresAt\', ?) WHERE JSON_VALUE(data, \'$.user.sub\') = \'cat\'', [Date.now() + 300000])
      return Response.json({ error: 'invalid_grant', error_description: 'grant request is invalid' }, { status: 400 })
    })
    const res = await browser.request('/api/token')
    t.equal(res.status, 200)
    t.equal(JSON.parse(res.body).token, 'from-the-other-instance')
    t.equal((await sessionOf(browser)).authenticated, true)
  })

  await t.test('tokens in the row that are no fresher (a slow request wrote old ones back) are not used', async (t) => {
    const browser = browserWith(base, (await loginThroughProvider(base, { username: 'fay' })).appCookie)
    await setExpiry(db, 'fay', Date.now() + 5000)
    interceptFetch(t, `${provider.issuer}/token`, async () => {
      await db.pool.query('UPDATE sessions SET data = JSON_SET(data, \'$.sso.accessToken\', \'stale\', \'$.sso.refreshToken\', \'older\', \'$.sso.accessTokenExpiresAt\', ?) WHERE JSON_VALUE(data, \'$.user.sub\') = \'fay\'', [Date.now() - 600000])
      return Response.json({ error: 'invalid_grant' }, { status: 400 })
    })
    t.equal((await browser.request('/api/token')).status, 401, 'an expired token is not handed out')
    t.equal((await sessionOf(browser)).authenticated, false, 'the login is over')
  })

  await t.test('a refreshed ID token of another subject ends the session', async (t) => {
    const browser = browserWith(base, (await loginThroughProvider(base, { username: 'dan' })).appCookie)
    await setExpiry(db, 'dan', Date.now() + 5000)
    tamperIdTokens(t, provider, (claims) => { claims.sub = 'someone-else' })
    t.equal((await browser.request('/api/token')).status, 401)
    t.equal((await sessionOf(browser)).authenticated, false)
  })

  await t.test('new tokens are saved even when the route answers 502', async (t) => {
    const browser = browserWith(base, (await loginThroughProvider(base, { username: 'eve' })).appCookie)
    await setExpiry(db, 'eve', Date.now() + 5000)
    const [old] = await tokensOf(db, 'eve')
    const res = await browser.request('/api/upstream-down')
    t.equal(res.status, 502, 'the route\'s own failure')
    const [saved] = await tokensOf(db, 'eve')
    t.not(saved!.accessToken, old!.accessToken, 'the refreshed tokens are in the row')
    const [row] = [...(await rows(db)).values()].filter((data) => data.user?.sub === 'eve')
    t.equal(row!.state, undefined, 'and nothing else the failed request changed')
  })

  const again = browserWith(base, (await loginThroughProvider(base, { username: 'ann' })).appCookie)
  await db.pool.query('UPDATE sessions SET data = JSON_REMOVE(JSON_SET(data, \'$.sso.accessTokenExpiresAt\', ?), \'$.sso.refreshToken\') WHERE JSON_VALUE(data, \'$.user.sub\') = \'ann\'', [Date.now() - 1000])
  const expired = await again.request('/api/token')
  t.equal(expired.status, 401, 'an expired access token without a refresh token: 401')
  t.match(JSON.parse(expired.body).message, /gave no refresh token/)
  t.equal((await sessionOf(again)).authenticated, true, 'the session itself lives on')
})

t.test('refresh on two instances, with a provider that rotates refresh tokens: once for all, and a slow request never writes the spent ones back', async (t) => {
  let slowStarted!: () => void
  let letSlowGo!: () => void
  const { provider, db, instances } = await startSsoStack(t, {
    instances: 2,
    provider: { rotateRefreshTokens: true },
    app: {
      sessionRoutes: async (scope) => {
        scope.get('/api/token', async (request) => ({ token: await scope.sso!.accessToken(request) }))
        // A request that read the session, works a while, and saves a change of its own.
        scope.get('/api/slow-change', async (request) => {
          const letGo = new Promise<void>((resolve) => { letSlowGo = resolve })
          slowStarted()
          await letGo
          request.raw.session!.state = { savedBy: 'the slow request' }
          return {}
        })
      }
    }
  })
  const [a, b] = instances.map((instance) => instance.base) as [string, string]
  const login = await loginThroughProvider(a, { username: 'ann' })
  const [onA, onB] = [browserWith(a, login.appCookie), browserWith(b, login.appCookie)]
  let refreshes = 0
  provider.provider.on('grant.success', (ctx: { oidc: { params?: { grant_type?: unknown } } }) => { if (ctx.oidc.params?.grant_type === 'refresh_token') refreshes++ })

  // Round-robin balancing: one browser's parallel requests reach both instances.
  await setExpiry(db, 'ann', Date.now() + 5000)
  const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => (i % 2 === 0 ? onA : onB).request('/api/token')))
  t.same(answers.map((res) => res.status), Array(8).fill(200), 'every request got a token')
  t.equal(new Set(answers.map((res) => JSON.parse(res.body).token)).size, 1, 'the same one')
  t.equal(refreshes, 1, 'one refresh at the provider for both instances')

  // A request reads the session; meanwhile the tokens are refreshed on the other instance.
  await setExpiry(db, 'ann', Date.now() + 5000)
  const started = new Promise<void>((resolve) => { slowStarted = resolve })
  const slow = onB.request('/api/slow-change')
  await started
  const refreshed = await onA.request('/api/token')
  t.equal(refreshed.status, 200)
  letSlowGo()
  t.equal((await slow).status, 200)
  const [stored] = await tokensOf(db, 'ann')
  t.equal(stored!.accessToken, JSON.parse(refreshed.body).token, 'the refreshed tokens are still in the row')
  const [row] = [...(await rows(db)).values()]
  t.same(row!.state, { savedBy: 'the slow request' }, 'beside the slow request\'s change')
  await setExpiry(db, 'ann', Date.now() + 5000)
  const next = await onB.request('/api/token')
  t.equal(next.status, 200, 'the next refresh works: the provider never saw a spent refresh token')
  t.equal((await sessionOf(onA)).authenticated, true, 'the login lives on')
  t.equal(refreshes, 3)
})

t.test('POST /auth/logout: the local session ends, 303 to the provider with id_token_hint, and back', async (t) => {
  const { provider, db, instances: [instance] } = await startSsoStack(t)
  const base = instance!.base
  const login = await loginThroughProvider(base, { username: 'ann' })
  const [tokens] = await tokensOf(db, 'ann')
  const backchannel = once(provider.provider, 'backchannel.success')

  const res = await httpRequest(`${base}/auth/logout`, { method: 'POST', headers: { cookie: login.appCookie, origin: base, 'content-type': 'application/x-www-form-urlencoded' }, body: '' })
  t.equal(res.status, 303)
  const target = new URL(String(res.headers.location))
  t.equal(`${target.origin}${target.pathname}`, `${provider.issuer}/session/end`, 'to the provider\'s end-session endpoint')
  t.equal(target.searchParams.get('id_token_hint'), tokens!.idToken)
  t.equal(target.searchParams.get('post_logout_redirect_uri'), `${base}/`)
  t.match(String(res.headers['set-cookie']), /sid=;.*Max-Age=0/, 'the cookie is cleared')
  t.equal((await sessionOf(browserWith(base, login.appCookie))).authenticated, false, 'logged out here')
  t.same(await tokensOf(db, 'ann'), [], 'the row is gone')

  const { logoutAtProvider } = await import('./support/sso-login.js')
  t.equal(await logoutAtProvider(target.href, login.providerCookies), `${base}/`, 'the provider sends the browser back to the page')
  await backchannel
  t.pass('and the provider\'s back-channel logout for that login was accepted')

  const local = await httpRequest(`${base}/auth/logout`, { method: 'POST' })
  t.equal(local.status, 303, 'without an SSO login: 303 too')
  t.equal(local.headers.location, `${base}/`, 'to the page')
  t.equal((await httpRequest(`${base}/session/logout`, { method: 'POST' })).status, 204, 'POST /session/logout keeps answering 204')
})

t.test('back-channel logout ends that login\'s sessions on every instance, and nothing else', async (t) => {
  const usersFile = writeUsersFile(t, { ann: 'local-password' })
  const { provider, db, instances } = await startSsoStack(t, { instances: 2, env: { AUTH_USERS_FILE: usersFile } })
  const [a, b] = instances.map((instance) => instance.base) as [string, string]
  const laptop = await loginThroughProvider(a, { username: 'ann' })
  const phone = await loginThroughProvider(b, { username: 'ann' })
  const tablet = await loginThroughProvider(b, { username: 'ann', providerCookies: laptop.providerCookies })
  const bob = await loginThroughProvider(a, { username: 'bob' })
  const localAnn = new Client(b)
  t.equal((await loginAs(localAnn, 'ann', 'local-password')).status, 200, 'an htpasswd user of the same name')
  const sidOf = async (cookie: string) => (await rows(db)).get(idOf(cookie))?.sso?.sid as string
  t.equal(await sidOf(tablet.appCookie), await sidOf(laptop.appCookie), 'the tablet joined the laptop\'s provider session')
  t.not(await sidOf(phone.appCookie), await sidOf(laptop.appCookie), 'the phone has a provider session of its own')
  const listed = JSON.parse((await browserWith(a, laptop.appCookie).request('/session/all')).body) as unknown[]
  t.equal(listed.length, 3, 'the SSO ann lists her three sessions, not the htpasswd ann\'s')
  t.equal(JSON.parse((await localAnn.request('/session/all')).body).length, 1, 'the htpasswd ann lists her one')

  const logout = await postLogoutToken(a, await logoutToken(provider, { sub: 'ann', sid: await sidOf(laptop.appCookie) }))
  t.equal(logout.status, 200)
  t.equal(logout.headers['cache-control'], 'no-store')
  t.notOk(logout.headers['set-cookie'], 'the provider gets no session')
  t.equal((await sessionOf(browserWith(a, laptop.appCookie))).authenticated, false, 'the laptop\'s session on instance A ended')
  t.equal((await sessionOf(browserWith(b, tablet.appCookie))).authenticated, false, 'the tablet\'s on instance B too: same provider session')
  t.equal((await sessionOf(browserWith(b, phone.appCookie))).authenticated, true, 'the phone\'s provider session is another one')
  t.equal((await sessionOf(browserWith(a, bob.appCookie))).authenticated, true, 'bob is untouched')
  t.same((await sessionOf(localAnn)).user, { name: 'ann' }, 'the htpasswd ann is another user')

  const phoneSid = await sidOf(phone.appCookie)
  const desk = await loginThroughProvider(a, { username: 'ann' })
  const bySid = await postLogoutToken(b, await logoutToken(provider, { sub: undefined, sid: phoneSid }))
  t.equal(bySid.status, 200, 'a token naming only the provider session')
  t.equal((await sessionOf(browserWith(a, phone.appCookie))).authenticated, false, 'ends that provider session\'s sessions')
  t.equal((await sessionOf(browserWith(b, desk.appCookie))).authenticated, true, 'and no other of the subject')
  t.same((await sessionOf(localAnn)).user, { name: 'ann' }, 'nor the htpasswd ann')

  const everything = await postLogoutToken(b, await logoutToken(provider, { sub: 'ann' }))
  t.equal(everything.status, 200, 'a token naming only the subject')
  t.equal((await sessionOf(browserWith(b, desk.appCookie))).authenticated, false, 'ends every session of that subject')
  t.same((await sessionOf(localAnn)).user, { name: 'ann' }, 'still not the htpasswd ann')
  t.equal((await sessionOf(browserWith(a, bob.appCookie))).authenticated, true, 'nor bob')
})

t.test('back-channel logout tokens are checked: each refusal is a 400 invalid_request and ends nothing', async (t) => {
  const { provider, instances } = await startSsoStack(t, { instances: 2 })
  const [a, b] = instances.map((instance) => instance.base) as [string, string]
  const login = await loginThroughProvider(a, { username: 'ann' })
  const strangerKey = { ...await generateSigningKey(), kid: 'stranger' }
  const now = Math.floor(Date.now() / 1000)

  const cases: Array<[string, () => Promise<string | undefined>, RegExp]> = [
    ['no logout_token', async () => undefined, /logout_token/],
    ['not a JWT', async () => 'not-a-jwt', /refused/],
    ['a signature by another key', async () => logoutToken(provider, {}, { key: strangerKey }), /refused/],
    ['a signature by another key under the provider\'s key id', async () => logoutToken(provider, {}, { key: { ...strangerKey, kid: provider.signingKey.kid } }), /signature/],
    ['an HMAC signature', async () => logoutToken(provider, {}, { alg: 'HS256' }), /alg/],
    ['another issuer', async () => logoutToken(provider, { iss: 'https://evil.example' }), /iss/],
    ['another audience', async () => logoutToken(provider, { aud: 'another-client' }), /aud/],
    ['several audiences, this client not the azp', async () => logoutToken(provider, { aud: ['another-client', provider.clientId] }), /azp/],
    ['another client as azp', async () => logoutToken(provider, { azp: 'another-client' }), /azp/],
    ['no events claim', async () => logoutToken(provider, { events: undefined }), /event/],
    ['another event', async () => logoutToken(provider, { events: { 'http://schemas.openid.net/event/other': {} } }), /event/],
    ['an event that is not an object', async () => logoutToken(provider, { events: { [BACKCHANNEL_LOGOUT_EVENT]: 'yes' } }), /event/],
    ['a nonce (an ID token)', async () => logoutToken(provider, { nonce: 'n' }), /nonce/],
    ['neither sub nor sid', async () => logoutToken(provider, { sub: undefined }), /neither sub nor sid/],
    ['no jti', async () => logoutToken(provider, { jti: undefined }), /jti/],
    ['no iat', async () => logoutToken(provider, { iat: undefined }), /iat/],
    ['issued ten minutes ago', async () => logoutToken(provider, { iat: now - 600, exp: now + 600 }), /iat|age|old/],
    ['expired', async () => logoutToken(provider, { iat: now - 100, exp: now - 60 }), /exp/]
  ]
  for (const [what, make, message] of cases) {
    const res = await postLogoutToken(a, await make())
    const body = JSON.parse(res.body || '{}')
    t.equal(res.status, 400, `${what}: 400`)
    t.equal(body.error, 'invalid_request', `${what}: invalid_request`)
    t.match(body.error_description, message, `${what}: says why`)
  }
  t.equal((await sessionOf(browserWith(a, login.appCookie))).authenticated, true, 'the session survived all of them')

  const token = await logoutToken(provider, { sub: 'someone-else' })
  t.equal((await postLogoutToken(a, token)).status, 200, 'a valid token')
  const replay = await postLogoutToken(b, token)
  t.equal(replay.status, 400, 'the same token again, at another instance: refused')
  t.match(JSON.parse(replay.body).error_description, /already used/)
})

t.test('SSO routes are 404 without OIDC_ISSUER, and the page offers SSO only with it', async (t) => {
  const { buildApp } = await import('../src/app.js')
  const app = await buildApp({ env: { NODE_ENV: 'test', LOG_LEVEL: 'silent' } })
  t.teardown(() => app.close())
  for (const [method, url] of [['GET', '/auth/login'], ['GET', '/auth/callback'], ['POST', '/auth/logout'], ['POST', '/auth/backchannel-logout']] as const) {
    t.equal((await app.inject({ method, url })).statusCode, 404, `${method} ${url}`)
  }
  t.match((await app.inject('/')).body, /<body data-sso="off" data-password-login="on">/)

  const { instances: [instance], provider } = await startSsoStack(t)
  const page = await httpRequest(`${instance!.base}/`)
  t.match(page.body, /<body data-sso="on" data-password-login="off">/, 'SSO on, no htpasswd file: only the SSO button')
  t.match(String(page.headers['content-security-policy']), new RegExp(`form-action 'self' ${provider.issuer}`), 'the logout form may be redirected to the provider')
  const documented = JSON.parse((await httpRequest(`${instance!.base}/docs/json`)).body).paths
  t.ok(documented['/auth/login'].get && documented['/auth/callback'].get && documented['/auth/logout'].post && documented['/auth/backchannel-logout'].post, '/docs documents the SSO routes')
  t.notOk(documented['/auth/backchannel-logout'].post.security, 'the back-channel logout needs no session cookie')
})
