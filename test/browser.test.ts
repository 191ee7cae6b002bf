import { readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { userKey } from '../src/session/identity.js'
import type { AddressInfo } from 'node:net'
import type { Page } from 'playwright-core'
import type { RowDataPacket } from 'mysql2/promise'
import t, { type Test } from 'tap'
import { Client, build, listen, serve, type TestDatabase } from './helper.js'
import { loginAs, writeUsersFile } from './support/accounts.js'
import { launchChromium, newContext, outputFile, skipWithoutChromium, watchForProblems } from './support/browser.js'

// End to end in a real browser, where cookies follow HttpOnly, SameSite and CORS rules that
// inject() and the HTTP client of the other tests do not apply.
//
// SESSION_COOKIE_SECURE=auto, as `npm run dev` has it: the browser talks plain http:// to the test
// server and would never send back a Secure cookie, the production default.
const browserEnv = { SESSION_COOKIE_SECURE: 'auto' }
const ANN = { username: 'ann', password: 'correct horse' }

async function logIn (page: Page, username: string, password: string): Promise<void> {
  await page.fill('#login [name=username]', username)
  await page.fill('#login [name=password]', password)
  await page.click('#login button[type=submit]')
}

async function sessionsOf (db: TestDatabase, user: string): Promise<number> {
  const [rows] = await db.pool.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM sessions WHERE user_key = ?', [userKey({ name: user })])
  return Number(rows[0]?.n)
}

t.test('the page in Chromium: log in, an unreadable cookie, reload, end another device, log out', { skip: skipWithoutChromium }, async (t) => {
  const { base, db } = await serve(t, { ...browserEnv, AUTH_USERS_FILE: writeUsersFile(t, { ann: ANN.password }) })
  const browser = await launchChromium(t)
  const laptop = await newContext(browser)
  const page = await laptop.newPage()
  const problems = watchForProblems(page)

  await page.goto(`${base}/`)
  await logIn(page, ANN.username, ANN.password)
  await page.locator('#account').waitFor()
  t.equal(await page.textContent('#user'), 'ann', 'the name is shown')

  const sid = (await laptop.cookies()).find((cookie) => cookie.name === 'sid')
  t.match(sid, { httpOnly: true, sameSite: 'Lax', secure: false }, 'the browser holds the session cookie')
  t.equal(await page.evaluate('document.cookie = "readable=1"; document.cookie'), 'readable=1',
    'scripts read ordinary cookies, but not the HttpOnly session cookie')

  await page.reload()
  await page.locator('#account').waitFor()
  t.equal(await page.textContent('#user'), 'ann', 'still logged in after a reload')

  const phone = await newContext(browser, { userAgent: 'phone-browser/1.0' })
  const phonePage = await phone.newPage()
  await phonePage.goto(`${base}/`)
  await logIn(phonePage, ANN.username, ANN.password)
  await phonePage.locator('#account').waitFor()

  await page.reload()
  const otherSession = page.locator('#sessions li[data-current="false"]')
  await otherSession.waitFor()
  t.equal(await page.locator('#sessions li').count(), 2, 'both sessions listed')
  t.equal(await otherSession.locator('.device-name').textContent(), 'Unknown browser', 'the other one by its device, unknown to bowser')
  t.equal(await otherSession.locator('.device-name').getAttribute('title'), 'phone-browser/1.0', 'and its user agent as sent, on hover')
  const screenshot = outputFile(t, 'logged-in.png')
  await page.screenshot({ path: screenshot, fullPage: true })
  t.comment(`screenshot of the logged-in page: ${screenshot}`)

  // Each ending asks first (test/page-browser.test.ts tests cancelling); yes here.
  page.on('dialog', (dialog) => dialog.accept())
  await otherSession.locator('button').click()
  await otherSession.waitFor({ state: 'detached' })
  t.equal(await page.locator('#sessions li').count(), 1, 'only this one is left')
  await phonePage.reload()
  await phonePage.locator('#login').waitFor()
  t.ok(await phonePage.isHidden('#account'), 'the ended device is logged out')

  await logIn(phonePage, ANN.username, ANN.password)
  await phonePage.locator('#account').waitFor()
  await page.click('#end-others')
  await page.locator('#notice', { hasText: 'Ended 1 other session.' }).waitFor()
  await phonePage.reload()
  await phonePage.locator('#login').waitFor()
  t.pass('"End all other sessions" logs the other device out too')

  await page.click('#logout')
  await page.locator('#login').waitFor()
  t.equal(await page.textContent('#notice'), 'Logged out.')
  t.notOk((await laptop.cookies()).some((cookie) => cookie.name === 'sid'), 'the cookie is cleared')
  t.equal(await sessionsOf(db, 'ann'), 0, 'no session of ann is left in the store')
  await page.reload()
  await page.locator('#login').waitFor()
  t.ok(await page.isHidden('#account'), 'still logged out after a reload')
  t.same(problems, [], 'no CSP violation, no script error')
})

t.test('the page shows every failure: wrong password, 429 with Retry-After, 503, no server', { skip: skipWithoutChromium }, async (t) => {
  const { base } = await serve(t, { ...browserEnv, AUTH_USERS_FILE: writeUsersFile(t, { ann: ANN.password }) })
  const page = await (await newContext(await launchChromium(t))).newPage()
  const problems = watchForProblems(page)
  const alert = (text: RegExp) => page.locator('#error[role="alert"]', { hasText: text }).waitFor()

  await page.goto(`${base}/`)
  await logIn(page, ANN.username, 'wrong password')
  await alert(/^Wrong username or password\.$/)
  t.equal(await page.inputValue('#login [name=password]'), '', 'the password field is emptied')

  // Four more failures from elsewhere reach the limit of five per username.
  for (let i = 0; i < 4; i++) await loginAs(new Client(base), ANN.username, 'wrong password')
  await logIn(page, ANN.username, ANN.password)
  await alert(/^Too many failed logins; try again later \(retry in \d+ s\)$/)
  t.pass('429 is shown with its Retry-After')

  const unconfigured = await build(t, { ...browserEnv, SESSION_HOST: undefined })
  const unconfiguredBase = await listen(unconfigured)
  await page.goto(`${unconfiguredBase}/`)
  await logIn(page, ANN.username, ANN.password)
  await alert(/^Login is not configured/)
  t.pass('503 is shown with its reason')

  await unconfigured.close()
  await logIn(page, ANN.username, ANN.password)
  await alert(/^The server cannot be reached/)
  t.pass('a network failure is shown')
  t.same(problems, [], 'no CSP violation, no script error')
})

t.test('the API docs render in Chromium under the same security headers', { skip: skipWithoutChromium }, async (t) => {
  const app = await build(t, { SESSION_HOST: undefined })
  const page = await (await newContext(await launchChromium(t))).newPage()
  const problems = watchForProblems(page)
  await page.goto(`${await listen(app)}/docs`)
  await page.locator('.swagger-ui .info .title', { hasText: 'Session backend' }).waitFor()
  await page.locator('.opblock-summary-path', { hasText: '/session/login' }).waitFor()
  t.same(problems, [], 'no CSP violation, no script error')
})

/** A static frontend on two more loopback ports: one origin that CORS_ORIGINS will list, one it will not. */
async function serveFrontend (t: Test): Promise<{ listed: string, unlisted: string }> {
  const files: Record<string, [string, Buffer]> = {
    '/': ['text/html', readFileSync(new URL('fixtures/frontend/index.html', import.meta.url))],
    '/frontend.js': ['text/javascript', readFileSync(new URL('fixtures/frontend/frontend.js', import.meta.url))]
  }
  const origins: string[] = []
  for (let i = 0; i < 2; i++) {
    const server = createServer((request, response) => {
      const file = files[new URL(request.url ?? '/', 'http://frontend').pathname]
      if (!file) return response.writeHead(404).end()
      response.writeHead(200, { 'content-type': file[0] }).end(file[1])
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
    origins.push(`http://localhost:${(server.address() as AddressInfo).port}`)
  }
  return { listed: origins[0] as string, unlisted: origins[1] as string }
}

interface Frontend {
  callApi: (method: string, path: string, body?: unknown) => Promise<{ status?: number, body?: unknown, retryAfter?: string | null, failed?: string }>
}

function callApi (page: Page, method: string, path: string, body?: unknown) {
  return page.evaluate(([method, path, body]) => (globalThis as unknown as Frontend).callApi(method, path, body), [method, path, body] as const)
}

t.test('a frontend on another origin uses the API with credentials: \'include\'', { skip: skipWithoutChromium }, async (t) => {
  const frontend = await serveFrontend(t)
  const { base, db } = await serve(t, {
    ...browserEnv,
    CORS_ORIGINS: frontend.listed,
    AUTH_USERS_FILE: writeUsersFile(t, { ann: ANN.password })
  })
  // localhost:API and localhost:FRONTEND: the same site (SameSite=Lax cookies go), another origin (CORS).
  const api = base.replace('127.0.0.1', 'localhost')
  const browser = await launchChromium(t)
  const context = await newContext(browser)
  const page = await context.newPage()
  await page.goto(`${frontend.listed}/?api=${api}`)

  t.match(await callApi(page, 'GET', '/session/all'), { status: 401, body: { message: 'Log in first' } },
    'an error answer is readable: it carries the CORS headers too')
  t.match(await callApi(page, 'POST', '/session/login', ANN), { status: 200, body: { authenticated: true, user: { name: 'ann' } } },
    'login, a JSON POST, passes its preflight')
  t.match((await context.cookies(api)).find((cookie) => cookie.name === 'sid'), { httpOnly: true, sameSite: 'Lax' },
    'the browser kept the cookie of a cross-origin answer')
  t.match(await callApi(page, 'GET', '/session'), { status: 200, body: { authenticated: true, user: { name: 'ann' } } },
    'and sends it with the next cross-origin request')
  t.match(await callApi(page, 'PUT', '/session/state', { theme: 'dark' }), { status: 200, body: { theme: 'dark' } })
  t.match(await callApi(page, 'POST', '/session/logout'), { status: 204 })
  t.match(await callApi(page, 'GET', '/session'), { status: 200, body: { authenticated: false } })

  for (let i = 0; i < 5; i++) await callApi(page, 'POST', '/session/login', { username: 'mallory', password: 'guess' })
  const throttled = await callApi(page, 'POST', '/session/login', { username: 'mallory', password: 'guess' })
  t.equal(throttled.status, 429)
  t.match(throttled.retryAfter, /^\d+$/, 'Retry-After is exposed to the frontend')

  const outsider = await (await newContext(browser)).newPage()
  await outsider.goto(`${frontend.unlisted}/?api=${api}`)
  t.match(await callApi(outsider, 'GET', '/session'), { failed: /Failed to fetch/ }, 'an unlisted origin cannot read an answer')
  t.match(await callApi(outsider, 'POST', '/session/login', ANN), { failed: /Failed to fetch/ })
  t.equal(await sessionsOf(db, 'ann'), 0, 'its login never reached the route: the preflight was refused')
})
