import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { Client, serve } from './helper.js'
import { loginAs, writeUsersFile } from './support/accounts.js'
import { launchChromium, newContext, skipWithoutChromium, watchForProblems } from './support/browser.js'

// Screenshots of the logged-in page, desktop and phone, in Debian's Chromium. Always taken and
// checked (into a temporary folder); with UPDATE_SCREENSHOTS=1 written to docs/images/ instead,
// for the documentation: `UPDATE_SCREENSHOTS=1 npx tap --disable-coverage test/page-screenshots.test.ts`.

const ANN = { username: 'ann', password: 'correct horse' }
const UA = {
  chromeLinux: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36',
  safariIphone: 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1',
  firefoxWindows: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0'
}
const SHOTS = [
  { file: 'page-desktop.png', viewport: { width: 1280, height: 800 }, deviceScaleFactor: 1, isMobile: false },
  { file: 'page-mobile.png', viewport: { width: 375, height: 812 }, deviceScaleFactor: 2, isMobile: true }
]
const MAX_BYTES = 300 * 1024

/** Width and height from a PNG's header, or null when the bytes are no PNG. */
function pngSize (png: Buffer): { width: number, height: number } | null {
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])
  if (png.length < 24 || !png.subarray(0, 8).equals(signature) || png.toString('latin1', 12, 16) !== 'IHDR') return null
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) }
}

t.test('screenshots of the logged-in page with three sessions, desktop and mobile', { skip: skipWithoutChromium }, async (t) => {
  const update = process.env.UPDATE_SCREENSHOTS === '1'
  const dir = update ? new URL('../docs/images/', import.meta.url).pathname : mkdtempSync(join(tmpdir(), 'page-screenshots-'))
  if (update) mkdirSync(dir, { recursive: true })
  else t.teardown(() => rmSync(dir, { recursive: true, force: true }))

  const { base } = await serve(t, { SESSION_COOKIE_SECURE: 'auto', AUTH_USERS_FILE: writeUsersFile(t, { ann: ANN.password }) })
  for (const userAgent of [UA.safariIphone, UA.firefoxWindows]) {
    t.equal((await loginAs(new Client(base), ANN.username, ANN.password, { 'user-agent': userAgent })).status, 200)
  }
  const browser = await launchChromium(t)

  for (const { file, viewport, deviceScaleFactor, isMobile } of SHOTS) {
    const context = await newContext(browser, {
      viewport, deviceScaleFactor, isMobile, userAgent: UA.chromeLinux, locale: 'en-US', timezoneId: 'UTC', colorScheme: 'light'
    })
    const page = await context.newPage()
    const problems = watchForProblems(page)
    await page.goto(`${base}/`)
    await page.getByLabel('Username').fill(ANN.username)
    await page.getByLabel('Password').fill(ANN.password)
    await page.getByLabel('Password').press('Enter')
    await page.locator('#sessions li').nth(2).waitFor()
    // Nothing focused: no focus ring in the picture.
    await page.evaluate('document.activeElement?.blur()')
    const devices = await page.locator('#sessions .device-name').allTextContents()
    t.same([devices[0], ...devices.slice(1).sort()], ['Chrome on Linux', 'Firefox on Windows', 'Safari on iPhone'], `${file}: this browser first, and two other devices`)

    const path = join(dir, file)
    await page.screenshot({ path })
    const png = readFileSync(path)
    t.same(pngSize(png), { width: viewport.width * deviceScaleFactor, height: viewport.height * deviceScaleFactor }, `${file}: a PNG of ${viewport.width}x${viewport.height} at ${deviceScaleFactor}x`)
    // A blank page compresses to a few kilobytes; this one has text and boxes.
    t.ok(png.length > 15000 && png.length < MAX_BYTES, `${file}: ${png.length} bytes, not blank, under ${MAX_BYTES}`)
    t.same(problems, [], 'no CSP violation, no script error')
    if (update) t.comment(`written: ${path}`)
    // Logged out again: the next picture shows the same three sessions.
    await page.getByRole('button', { name: 'Log out' }).click()
    await page.locator('#login').waitFor()
    await context.close()
  }
})
