import { existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'
import type { Test } from 'tap'

/** Debian's chromium package: playwright-core drives it and never downloads a browser (that fails here). */
export const CHROMIUM = '/usr/bin/chromium'

/** The `skip` option of browser tests: `npm test` still passes on a machine without Chromium. */
export const skipWithoutChromium = existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed (apt-get install -y chromium)`

// Headless, no GPU, no sandbox (root in a container), and none of the background connections to
// Google's services, which this machine's closed network refuses.
const CHROMIUM_FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'
]

/** Headless Chromium on a fresh profile (playwright makes a new --user-data-dir), closed at teardown. */
export async function launchChromium (t: Test): Promise<Browser> {
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS })
  t.teardown(() => browser.close())
  return browser
}

/** A browser profile of its own (cookies, storage) that fails fast instead of waiting 30 s. */
export async function newContext (browser: Browser, options: Parameters<Browser['newContext']>[0] = {}): Promise<BrowserContext> {
  const context = await browser.newContext(options)
  context.setDefaultTimeout(10000)
  return context
}

/**
 * What the page got wrong, to assert there is nothing: Content-Security-Policy violations (Chromium
 * reports each on the console) and uncaught script errors.
 */
export function watchForProblems (page: Page): string[] {
  const problems: string[] = []
  page.on('console', (message) => {
    if (message.text().includes('Content Security Policy')) problems.push(message.text())
  })
  page.on('pageerror', (error) => problems.push(error.message))
  return problems
}

/** A file in the test's own output folder under .tap/ (kept after the run, git-ignored). */
export function outputFile (t: Test, name: string): string {
  mkdirSync(t.testdirName, { recursive: true })
  return join(t.testdirName, name)
}
