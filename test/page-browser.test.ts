import type { Browser, Dialog, Page } from 'playwright-core'
import t, { type Test } from 'tap'
import { Client, serve } from './helper.js'
import { loginAs, writeUsersFile } from './support/accounts.js'
import { launchChromium, newContext, skipWithoutChromium, watchForProblems } from './support/browser.js'

// The page in Chromium as a person meets it: asked before anything ends, usable with the keyboard
// and a screen reader, and on a phone's 360 px.

// Inside page.evaluate(): the browser's own globals (this project compiles for Node, without the DOM library).
declare const document: any
declare const window: any
declare function getComputedStyle (element: unknown): { outlineStyle: string, outlineWidth: string }

const browserEnv = { SESSION_COOKIE_SECURE: 'auto' }
const ANN = { username: 'ann', password: 'correct horse' }
const UA = {
  chromeLinux: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36',
  firefoxWindows: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0',
  safariIphone: 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1'
}

interface Entry { id: string, current: boolean, device: string, userAgent: string | null }

/** ann, logged in elsewhere over plain HTTP with this User-Agent. */
async function elsewhere (base: string, userAgent: string): Promise<Client> {
  const client = new Client(base)
  const res = await loginAs(client, ANN.username, ANN.password, { 'user-agent': userAgent })
  if (res.status !== 200) throw new Error(`login: ${res.status}`)
  return client
}

/** The devices of ann's sessions, as GET /session/all lists them to this client (null once it is logged out). */
async function devicesSeenBy (client: Client): Promise<string[] | null> {
  const res = await client.request('/session/all')
  return res.status === 200 ? (res.json() as Entry[]).map(({ device }) => device).sort() : null
}

/** A page logged in as ann in a browser that says it is Chrome on Linux (closed with the browser). */
async function loggedInPage (browser: Browser, base: string, viewport = { width: 1280, height: 800 }): Promise<Page> {
  const context = await newContext(browser, { userAgent: UA.chromeLinux, viewport })
  const page = await context.newPage()
  await page.goto(`${base}/`)
  await page.getByLabel('Username').fill(ANN.username)
  await page.getByLabel('Password').fill(ANN.password)
  await page.getByRole('button', { name: 'Log in' }).click()
  await page.locator('#account').waitFor()
  return page
}

/**
 * Clicks, answers the confirmation the click must ask, and resolves with its question. A click
 * that asks nothing fails: Playwright would dismiss a dialog nobody handles, and this one waits.
 */
async function clickAndAnswer (t: Test, page: Page, click: () => Promise<void>, accept: boolean): Promise<string> {
  const asked = new Promise<Dialog>((resolve) => page.once('dialog', resolve))
  const clicked = click()
  // Awaited below; one still waiting when the test fails ends with the browser, and must not crash the run.
  clicked.catch(() => {})
  const dialog = await Promise.race([asked, new Promise<never>((_resolve, reject) => setTimeout(() => reject(new Error('no confirmation was asked')), 5000))])
  const question = dialog.message()
  t.equal(dialog.type(), 'confirm', `a confirmation: ${question}`)
  await (accept ? dialog.accept() : dialog.dismiss())
  await clicked
  return question
}

/** The requests the page sends that end sessions. */
function endingRequests (page: Page): string[] {
  const sent: string[] = []
  page.on('request', (request) => { if (request.method() === 'DELETE') sent.push(request.url()) })
  return sent
}

t.test('ending one session, all others, or this one asks first; cancelling changes nothing', { skip: skipWithoutChromium }, async (t) => {
  const { base } = await serve(t, { ...browserEnv, AUTH_USERS_FILE: writeUsersFile(t, { ann: ANN.password }) })
  const browser = await launchChromium(t)
  const firefox = await elsewhere(base, UA.firefoxWindows)
  const iphone = await elsewhere(base, UA.safariIphone)
  const page = await loggedInPage(browser, base)
  const problems = watchForProblems(page)
  const deletes = endingRequests(page)
  const notice = page.getByRole('status')

  // One other session.
  const endFirefox = page.getByRole('button', { name: /^End session: Firefox on Windows/ })
  let question = await clickAndAnswer(t, page, () => endFirefox.click(), false)
  t.match(question, /Firefox on Windows/, 'the question names the device')
  await page.waitForTimeout(300)
  t.same(deletes, [], 'cancelled: nothing sent')
  t.same(await devicesSeenBy(iphone), ['Chrome on Linux', 'Firefox on Windows', 'Safari on iPhone'], 'cancelled: the session is still listed')
  t.equal(await page.locator('#sessions li').count(), 3)

  await clickAndAnswer(t, page, () => endFirefox.click(), true)
  await notice.filter({ hasText: 'Ended the session on Firefox on Windows.' }).waitFor()
  t.same(await devicesSeenBy(iphone), ['Chrome on Linux', 'Safari on iPhone'], 'accepted: the session is gone')
  t.equal(await devicesSeenBy(firefox), null, 'and its device logged out')
  t.equal(await page.locator('#sessions li').count(), 2)
  t.equal(await page.evaluate(() => document.activeElement?.id), 'notice', 'focus on the message: the button pressed is gone')

  // This one.
  const endHere = page.getByRole('button', { name: /^End \(logs out here\): this browser, Chrome on Linux$/ })
  question = await clickAndAnswer(t, page, () => endHere.click(), false)
  t.match(question, /logged out here/, 'the question says it logs out here')
  await page.waitForTimeout(300)
  t.equal(deletes.length, 1, 'cancelled: nothing sent after the first session\'s end')
  t.same(await devicesSeenBy(iphone), ['Chrome on Linux', 'Safari on iPhone'], 'cancelled: this session is still listed')
  t.ok(await page.isVisible('#account'), 'and the page still logged in')

  await clickAndAnswer(t, page, () => endHere.click(), true)
  await page.locator('#login').waitFor()
  t.equal(await notice.textContent(), 'Session ended: you are logged out.')
  t.equal(await page.evaluate(() => document.activeElement?.id), 'notice', 'focus on the message')
  t.same(await devicesSeenBy(iphone), ['Safari on iPhone'], 'accepted: this session is gone')

  // All the others, from a new login here.
  await page.getByLabel('Username').fill(ANN.username)
  await page.getByLabel('Password').fill(ANN.password)
  await page.getByLabel('Password').press('Enter')
  await page.locator('#account').waitFor()
  const before = deletes.length
  question = await clickAndAnswer(t, page, () => page.getByRole('button', { name: 'End all other sessions' }).click(), false)
  t.match(question, /other/, question)
  await page.waitForTimeout(300)
  t.equal(deletes.length, before, 'cancelled: nothing sent')
  t.same(await devicesSeenBy(iphone), ['Chrome on Linux', 'Safari on iPhone'], 'cancelled: the other session is still there')

  await clickAndAnswer(t, page, () => page.getByRole('button', { name: 'End all other sessions' }).click(), true)
  await notice.filter({ hasText: 'Ended 1 other session.' }).waitFor()
  t.equal(await devicesSeenBy(iphone), null, 'accepted: the other session is gone')
  t.equal(await page.locator('#sessions li').count(), 1)
  t.same(problems, [], 'no CSP violation, no script error')
})

t.test('keyboard and screen reader: labels, live regions, named buttons, focus, visible focus', { skip: skipWithoutChromium }, async (t) => {
  const { base } = await serve(t, { ...browserEnv, AUTH_USERS_FILE: writeUsersFile(t, { ann: ANN.password }) })
  const browser = await launchChromium(t)
  await elsewhere(base, UA.firefoxWindows)
  const page = await (await newContext(browser, { userAgent: UA.chromeLinux })).newPage()
  const problems = watchForProblems(page)
  await page.goto(`${base}/`)
  await page.locator('#login').waitFor()

  t.same(await page.evaluate(() => [...document.querySelectorAll('input')].map((input) => [input.name, input.labels?.[0]?.textContent?.trim()])),
    [['username', 'Username'], ['password', 'Password']], 'every input has its label')
  t.equal(await page.getByRole('alert').count(), 1, 'an alert region for errors, there before any error')
  t.equal(await page.getByRole('status').count(), 1, 'a status region for what happened')
  t.ok(await page.getByRole('form', { name: 'Log in' }).isVisible(), 'the form is named by its heading')

  // The keyboard alone: Tab into the form, type, Enter.
  await page.keyboard.press('Tab')
  t.equal(await page.evaluate(() => document.activeElement?.id), 'username', 'the first Tab reaches the username')
  const focusRing = await page.evaluate(() => {
    const style = getComputedStyle(document.activeElement)
    return { style: style.outlineStyle, width: parseFloat(style.outlineWidth) }
  })
  t.ok(focusRing.style !== 'none' && focusRing.width >= 2, `a visible focus ring: ${JSON.stringify(focusRing)}`)
  await page.keyboard.type(ANN.username)
  await page.keyboard.press('Tab')
  t.equal(await page.evaluate(() => document.activeElement?.id), 'password')
  await page.keyboard.type('wrong password')
  await page.keyboard.press('Enter')
  await page.getByRole('alert').filter({ hasText: 'Wrong username or password.' }).waitFor()
  t.equal(await page.evaluate(() => document.activeElement?.id), 'password', 'after a wrong password, still in the (emptied) password field')
  t.equal(await page.inputValue('#password'), '')
  await page.keyboard.type(ANN.password)
  await page.keyboard.press('Enter')
  await page.locator('#account').waitFor()
  t.equal(await page.evaluate(() => document.activeElement?.textContent), 'Your sessions', 'logged in: focus on the sessions heading')
  t.equal(await page.getByRole('alert').textContent(), '', 'the error is cleared')

  // Every control a real button, named by the session it ends.
  const buttons = await page.evaluate(() => [...document.querySelectorAll('#account button')].map((button) => ({
    tag: button.tagName, type: button.getAttribute('type'), name: button.getAttribute('aria-label') ?? button.textContent
  })))
  t.same(buttons, [
    { tag: 'BUTTON', type: 'button', name: 'Log out' },
    { tag: 'BUTTON', type: 'button', name: 'End (logs out here): this browser, Chrome on Linux' },
    { tag: 'BUTTON', type: 'button', name: 'End session: Firefox on Windows, 127.0.0.1' },
    { tag: 'BUTTON', type: 'button', name: 'End all other sessions' }
  ], 'real buttons, named by device')
  t.ok(await page.getByRole('button', { name: 'End session: Firefox on Windows, 127.0.0.1' }).isVisible(), 'found by role and name')
  t.equal(await page.getByRole('list').getByRole('listitem').count(), 2, 'the sessions are a list')
  t.equal(await page.getByTitle(UA.firefoxWindows).textContent(), 'Firefox on Windows', 'the raw User-Agent on hover')

  // Tab order: from the heading on, through every session's button, in reading order.
  const order: string[] = []
  for (let i = 0; i < 3; i++) {
    await page.keyboard.press('Tab')
    order.push(await page.evaluate(() => document.activeElement?.getAttribute('aria-label') ?? document.activeElement?.textContent ?? ''))
  }
  t.same(order, ['End (logs out here): this browser, Chrome on Linux', 'End session: Firefox on Windows, 127.0.0.1', 'End all other sessions'])

  // Log out by keyboard: focus goes to the message, and the next Tab to the form.
  await page.getByRole('button', { name: 'Log out' }).focus()
  await page.keyboard.press('Enter')
  await page.locator('#login').waitFor()
  t.same(await page.evaluate(() => [document.activeElement?.id, document.activeElement?.getAttribute('role'), document.activeElement?.textContent]),
    ['notice', 'status', 'Logged out.'], 'logged out: focus on the message, in the status region')
  await page.keyboard.press('Tab')
  t.equal(await page.evaluate(() => document.activeElement?.id), 'username', 'and the next Tab into the form')
  t.same(problems, [], 'no CSP violation, no script error')
})

t.test('at 360 px: no sideways scrolling, every button on one line', { skip: skipWithoutChromium }, async (t) => {
  const { base } = await serve(t, { ...browserEnv, AUTH_USERS_FILE: writeUsersFile(t, { ann: ANN.password }) })
  const browser = await launchChromium(t)
  await elsewhere(base, UA.safariIphone)
  await elsewhere(base, UA.firefoxWindows)
  const page = await loggedInPage(browser, base, { width: 360, height: 740 })
  const problems = watchForProblems(page)
  await page.locator('#sessions li').nth(2).waitFor()

  const layout = () => page.evaluate(() => ({
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
    // Each visible button: its label's lines (client rects of its text, by distinct top), and whether it overflows.
    buttons: [...document.querySelectorAll('button')].filter((button) => button.offsetParent !== null).map((button) => {
      const range = document.createRange()
      range.selectNodeContents(button)
      const lines = new Set([...range.getClientRects()].map((rect) => Math.round(rect.top))).size
      const box = button.getBoundingClientRect()
      return { label: button.textContent, lines, overflows: button.scrollWidth > button.clientWidth, right: box.right }
    }),
    // Each session: how wide its description is (its first part), against the width of its entry.
    sessions: [...document.querySelectorAll('#sessions li')].map((item) => ({
      description: Math.round(item.firstElementChild?.getBoundingClientRect().width ?? 0), entry: item.clientWidth
    }))
  }))

  const loggedIn = await layout()
  t.ok(loggedIn.scrollWidth <= loggedIn.innerWidth, `no horizontal overflow: ${loggedIn.scrollWidth} <= ${loggedIn.innerWidth}`)
  t.same(loggedIn.buttons.map(({ label }) => label), ['Log out', 'End (logs out here)', 'End', 'End', 'End all other sessions'])
  for (const button of loggedIn.buttons) {
    t.same({ lines: button.lines, overflows: button.overflows }, { lines: 1, overflows: false }, `"${button.label}" on one line, not squeezed`)
    t.ok(button.right <= loggedIn.innerWidth, `"${button.label}" within the screen`)
  }
  t.equal(loggedIn.sessions.length, 3)
  for (const { description, entry } of loggedIn.sessions) {
    t.ok(description >= 0.75 * entry, `a session's description is not squeezed into a column beside its button: ${description} of ${entry} px`)
  }

  await page.getByRole('button', { name: 'Log out' }).click()
  await page.locator('#login').waitFor()
  const loggedOut = await layout()
  t.ok(loggedOut.scrollWidth <= loggedOut.innerWidth, 'the login form fits too')
  for (const button of loggedOut.buttons) t.equal(button.lines, 1, `"${button.label}" on one line`)
  t.same(problems, [], 'no CSP violation, no script error')
})
