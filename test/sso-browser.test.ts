import { existsSync } from 'node:fs'
import type { RowDataPacket } from 'mysql2/promise'
import type { BrowserContext, Page } from 'playwright-core'
import t, { type Test } from 'tap'
import type { TestDatabase } from './helper.js'
import { launchChromium, newContext, outputFile, skipWithoutChromium, watchForProblems } from './support/browser.js'
import { startSsoStack } from './support/sso.js'

// Single sign-on end to end in Chromium, through the dev provider's own pages (its login form, its
// "Yes, sign me out" confirmation): the redirects, cookies and the page's Content-Security-Policy
// (form-action) as a browser applies them, which the HTTP driver of the other SSO tests does not.

const POLL_MS = 5000

interface SsoRow {
  id: string
  data: {
    user?: { name?: string, iss?: string, sub?: string }
    sso?: { idToken?: string, accessToken?: string, refreshToken?: string, sid?: string }
    ssoLogin?: unknown
  }
}

/** Every session row, its data parsed (the column is JSON text). */
async function rows (db: TestDatabase): Promise<SsoRow[]> {
  const [found] = await db.pool.query<RowDataPacket[]>('SELECT session_id, data FROM sessions')
  return found.map((row) => ({ id: String(row.session_id), data: JSON.parse(String(row.data)) }))
}

/** The rows of the provider's user `sub`. */
async function rowsOf (db: TestDatabase, issuer: string, sub: string): Promise<SsoRow[]> {
  return (await rows(db)).filter(({ data }) => data.user?.iss === issuer && data.user.sub === sub)
}

async function until (what: string, condition: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + POLL_MS
  while (!await condition()) {
    if (Date.now() > deadline) throw new Error(`not within ${POLL_MS} ms: ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

/**
 * The provider's pages @import a Google font; this machine has no way out, so the request is
 * refused at once instead of hanging the page's load event.
 */
async function offline (context: BrowserContext): Promise<BrowserContext> {
  await context.route(/^https:\/\/fonts\.(googleapis|gstatic)\.com\//, (route) => route.abort())
  return context
}

/** From the app's page through the provider's login form back to the page, logged in. */
async function logInWithSso (page: Page, base: string, issuer: string, name: string): Promise<void> {
  await page.goto(`${base}/`)
  await navigate(page, 'the provider\'s login page', (url) => url.href.startsWith(`${issuer}/interaction/`),
    () => page.locator('#sso a', { hasText: 'Log in with SSO' }).click())
  await page.fill('input[name=login]', name)
  await page.fill('input[name=password]', 'any password at all')
  await navigate(page, 'the page', (url) => url.href === `${base}/`, () => page.click('button[type=submit]'))
  await page.locator('#account').waitFor()
}

/**
 * Runs `step` (an action and what it leads to) and resolves with its result, unless the page's
 * Content-Security-Policy blocks a navigation first (form-action applies to a form's redirects
 * too): then it fails at once with Chromium's report of the violation, instead of waiting out the
 * timeout. The report is listened for before the action, which may trigger it right away.
 */
async function unlessBlocked<T> (page: Page, what: string, step: () => Promise<T>): Promise<T> {
  const blocked = page.waitForEvent('console', { predicate: (message) => message.text().includes('Content Security Policy') })
    .then((message) => { throw new Error(`${what}: blocked by the page's Content-Security-Policy: ${message.text()}`) })
  const done = step()
  // The loser of the race settles later, with nobody waiting for it.
  blocked.catch(() => {})
  done.catch(() => {})
  return await Promise.race([done, blocked])
}

/** `action`, then waits until the page is at a URL that `reached` accepts (see unlessBlocked). */
async function navigate (page: Page, where: string, reached: (url: URL) => boolean, action: () => Promise<unknown>): Promise<void> {
  await unlessBlocked(page, `the way to ${where}`, async () => {
    await action()
    await page.waitForURL(reached)
  })
}

/**
 * Clicks the page's "Log out" and resolves with how the app answered the form's POST /auth/logout:
 * a 303 to the provider's end-session page, or the status and body it answered instead.
 */
async function clickLogout (page: Page, base: string): Promise<{ origin: string | null, status: number, location: string, body: string }> {
  const response = await unlessBlocked(page, 'the logout form', async () => {
    const answered = page.waitForResponse((response) => response.url() === `${base}/auth/logout` && response.request().method() === 'POST')
    await page.click('#logout')
    return await answered
  })
  const body = response.status() === 303 ? '' : await response.text().catch(() => '')
  // Origin as the browser sent it: the app refuses a POST from another origin.
  const origin = await response.request().headerValue('origin')
  return { origin, status: response.status(), location: await response.headerValue('location') ?? '', body }
}

/** The page's "Log out", the provider's confirmation, and back on the page, logged out. */
async function logOutWithSso (t: Test, page: Page, base: string, issuer: string): Promise<boolean> {
  const logout = await clickLogout(page, base)
  if (!t.match(logout, { status: 303, location: `${issuer}/session/end?` }, 'the logout form is answered with a redirect to the provider', { logout })) return false
  await navigate(page, 'the provider\'s logout page', (url) => url.href.startsWith(`${issuer}/session/end`), async () => {})
  await navigate(page, 'the page', (url) => url.href === `${base}/`, () => page.getByRole('button', { name: 'Yes, sign me out' }).click())
  await page.locator('#sso a').waitFor()
  return true
}

t.test('SSO in Chromium: the provider\'s login page, tokens only on the server, reload, logout at the provider', { skip: skipWithoutChromium }, async (t) => {
  const { provider, db, instances: [instance] } = await startSsoStack(t)
  const base = instance?.base as string
  const context = await offline(await newContext(await launchChromium(t)))
  const page = await context.newPage()
  const problems = watchForProblems(page)
  // Everything the app's origin answered to this page (documents, script, fetches): no token may be in it.
  const bodies: Array<Promise<{ url: string, body: string }>> = []
  page.on('response', (response) => {
    if (new URL(response.url()).origin !== base) return
    // A redirect has no body to read: ''.
    bodies.push(response.text().then((body) => ({ url: response.url(), body }), () => ({ url: response.url(), body: '' })))
  })

  await page.goto(`${base}/`)
  await page.locator('#sso a').waitFor()
  t.equal(await page.getAttribute('body', 'data-sso'), 'on', 'the page offers SSO')
  t.equal(await page.getAttribute('#sso a', 'href'), '/auth/login?returnTo=%2F')
  t.ok(await page.isHidden('#login'), 'and no password form: no AUTH_USERS_FILE')
  t.ok(await page.isHidden('#account'))

  await navigate(page, 'the provider\'s login page', (url) => url.href.startsWith(`${provider.issuer}/interaction/`), () => page.click('#sso a'))
  t.pass('the link leads to the provider\'s login page')
  await page.fill('input[name=login]', 'alice')
  await page.fill('input[name=password]', 'whatever she likes')
  await navigate(page, 'the page', (url) => url.href === `${base}/`, () => page.click('button[type=submit]'))
  await page.locator('#account').waitFor()
  t.equal(await page.textContent('#user'), 'alice', 'back on the page, logged in under the login name')
  t.ok(await page.isHidden('#sso'), 'the SSO link is gone')

  const [row, ...more] = await rowsOf(db, provider.issuer, 'alice')
  t.equal(more.length, 0, 'one session row for alice')
  const tokens = row?.data.sso
  t.match(tokens, { idToken: String, accessToken: String, refreshToken: String, sid: String }, 'the provider\'s tokens are in the session row')
  t.notOk((await rows(db)).some(({ data }) => data.ssoLogin !== undefined), 'no row keeps the pending login (state, PKCE verifier)')
  const secrets = [tokens?.idToken, tokens?.accessToken, tokens?.refreshToken].filter((value): value is string => typeof value === 'string')
  const leaks = (where: string, text: string) => secrets.filter((secret) => text.includes(secret)).map(() => where)

  const cookies = await context.cookies()
  t.match(cookies.find((cookie) => cookie.name === 'sid'), { domain: '127.0.0.1', path: '/', httpOnly: true, sameSite: 'Lax', secure: false },
    'the session cookie is HttpOnly')
  // What the page's own scripts can read: its cookies and both storages (an expression: the
  // project's TypeScript has no DOM types).
  const storage = await page.evaluate<{ cookie: string, local: string[], session: string[] }>(`({
    cookie: document.cookie,
    local: Object.keys(localStorage).map((key) => key + '=' + localStorage.getItem(key)),
    session: Object.keys(sessionStorage).map((key) => key + '=' + sessionStorage.getItem(key))
  })`)
  t.notMatch(storage.cookie, /(^|; )sid=/, 'the page\'s script cannot read it')

  await page.reload()
  await page.locator('#account').waitFor()
  t.equal(await page.textContent('#user'), 'alice', 'still logged in after a reload')
  const screenshot = outputFile(t, 'sso-logged-in.png')
  await page.screenshot({ path: screenshot, fullPage: true })
  t.ok(existsSync(screenshot))
  t.comment(`screenshot of the logged-in page: ${screenshot}`)

  const received = await Promise.all(bodies)
  t.ok(received.some(({ url }) => url === `${base}/session`), `the app's answers were collected (${received.length})`)
  t.same([
    // Every cookie of the browser, the app's and (same host, other port) the provider's.
    ...cookies.flatMap((cookie) => leaks(`cookie ${cookie.name}`, cookie.value)),
    ...leaks('document.cookie', storage.cookie),
    ...storage.local.flatMap((entry) => leaks('localStorage', entry)),
    ...storage.session.flatMap((entry) => leaks('sessionStorage', entry)),
    ...received.flatMap(({ url, body }) => leaks(`the body of ${url}`, body))
  ], [], 'no token reached the browser: not in a cookie, not in storage, not in an answer')

  const logout = await clickLogout(page, base)
  // The rest would only time out: stop here, with what the app answered.
  if (!t.match(logout, { status: 303, location: `${provider.issuer}/session/end?` }, 'the logout form is answered with a redirect to the provider', { logout })) return
  t.equal(new URL(logout.location).searchParams.get('post_logout_redirect_uri'), `${base}/`, 'and back to the page afterwards')
  await navigate(page, 'the provider\'s logout page', (url) => url.href.startsWith(`${provider.issuer}/session/end`), async () => {})
  const confirm = page.getByRole('button', { name: 'Yes, sign me out' })
  await confirm.waitFor()
  t.pass('"Log out" leads to the provider\'s confirmation page')
  await navigate(page, 'the page', (url) => url.href === `${base}/`, () => confirm.click())
  await page.locator('#sso a').waitFor()
  t.pass('which leads back to the page')
  t.ok(await page.isHidden('#account'), 'logged out')
  // The page's GET /session then starts an anonymous session (SESSION_SAVE_UNINITIALIZED): a new cookie, not the old one.
  const loggedInSid = cookies.find((cookie) => cookie.name === 'sid')?.value
  t.notOk((await context.cookies(base)).some((cookie) => cookie.name === 'sid' && cookie.value === loggedInSid), 'the logged-in session\'s cookie is gone')
  t.equal((await rowsOf(db, provider.issuer, 'alice')).length, 0, 'no session row of alice is left')

  await page.click('#sso a')
  await page.locator('input[name=login]').waitFor()
  t.pass('logging in again asks for a name: the provider\'s session ended too')
  t.same(problems, [], 'no CSP violation (the logout form\'s redirect to the provider is allowed), no script error')
})

t.test('back-channel logout: one provider session ends its app session only, on whichever instance it is', { skip: skipWithoutChromium }, async (t) => {
  const { provider, db, instances } = await startSsoStack(t, { instances: 2 })
  const [first, second] = instances.map(({ base }) => base) as [string, string]
  const backchannel: string[] = []
  provider.provider.on('backchannel.success', (_ctx, _client, accountId, sid) => backchannel.push(`ok ${accountId} ${sid}`))
  provider.provider.on('backchannel.error', (_ctx, error, _client, accountId, sid) => backchannel.push(`error ${accountId} ${sid}: ${error.message}`))

  const browser = await launchChromium(t)
  const laptop = await (await offline(await newContext(browser))).newPage()
  const phone = await (await offline(await newContext(browser))).newPage()
  const problems = [watchForProblems(laptop), watchForProblems(phone)]
  await logInWithSso(laptop, first, provider.issuer, 'bob')
  await logInWithSso(phone, second, provider.issuer, 'bob')
  t.equal(await laptop.textContent('#user'), 'bob')
  t.equal(await phone.textContent('#user'), 'bob')

  const both = await rowsOf(db, provider.issuer, 'bob')
  t.equal(both.length, 2, 'two sessions of bob, one per browser')
  const sids = both.map(({ data }) => data.sso?.sid)
  t.ok(sids.every((sid) => typeof sid === 'string') && sids[0] !== sids[1], 'of two provider sessions')
  const phoneSession = await phone.context().cookies(second)
  const phoneRow = both.find(({ id }) => phoneSession.some((cookie) => cookie.name === 'sid' && decodeURIComponent(cookie.value).startsWith(`s:${id}.`)))
  t.ok(phoneRow, 'the phone\'s cookie names one of them')
  const phoneSid = phoneRow?.data.sso?.sid as string
  const laptopSid = sids.find((sid) => sid !== phoneSid) as string

  if (!await logOutWithSso(t, laptop, first, provider.issuer)) return
  t.ok(await laptop.isHidden('#account'), 'the laptop is logged out')
  await until('the logout token of the laptop\'s provider session is delivered', async () => backchannel.length > 0)
  t.same(backchannel, [`ok bob ${laptopSid}`], 'the provider told instance 0, which accepted it')

  const left = await rowsOf(db, provider.issuer, 'bob')
  t.same(left.map(({ data }) => data.sso?.sid), [phoneSid], 'only the phone\'s session is left: the token named the laptop\'s sid')
  await phone.reload()
  await phone.locator('#account').waitFor()
  t.equal(await phone.textContent('#user'), 'bob', 'the phone is still logged in')

  // The phone's provider session ends at the provider itself, without a request to the app.
  await phone.goto(`${provider.issuer}/session/end?client_id=${encodeURIComponent(provider.clientId)}`)
  await phone.getByRole('button', { name: 'Yes, sign me out' }).click()
  await phone.waitForURL((url) => url.href.startsWith(`${provider.issuer}/session/end/success`))
  t.pass('the provider confirms the sign-out on its own page')
  await until('the phone\'s session row is gone', async () => (await rowsOf(db, provider.issuer, 'bob')).length === 0)
  t.same(backchannel, [`ok bob ${laptopSid}`, `ok bob ${phoneSid}`], 'instance 0 accepted the second logout token too')

  await phone.goto(`${second}/`)
  await phone.locator('#sso a').waitFor()
  t.ok(await phone.isHidden('#account'), 'instance 1 has logged the phone out: its session ended through instance 0')
  t.same(problems, [[], []], 'no CSP violation, no script error')
})
