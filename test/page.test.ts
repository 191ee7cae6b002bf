import { readFileSync } from 'node:fs'
import t from 'tap'
import { buildWithDatabase, countRows } from './helper.js'

// The page and its files live outside the session bridge, so inject() serves them faithfully.

const webFile = (name: string) => readFileSync(new URL(`../src/web/${name}`, import.meta.url), 'utf8')

t.test('GET / and its script and stylesheet are served, and create no session', async (t) => {
  const { app, db } = await buildWithDatabase(t)
  for (const [url, file, type] of [
    ['/', 'index.html', 'text/html; charset=utf-8'],
    ['/assets/app.js', 'app.js', 'text/javascript; charset=utf-8'],
    ['/assets/style.css', 'style.css', 'text/css; charset=utf-8']
  ] as const) {
    const res = await app.inject(url)
    t.equal(res.statusCode, 200, url)
    t.equal(res.headers['content-type'], type)
    t.equal(res.headers['cache-control'], 'no-cache')
    // The page says on <body> which ways to log in the server offers: here no SSO, the password form.
    t.equal(res.body, webFile(file).replace('<body>', '<body data-sso="off" data-password-login="on">'))
    t.notOk(res.headers['set-cookie'], 'no cookie')
  }
  t.equal(await countRows(db), 0, 'no session row')
  const paths = (await app.inject('/docs/json')).json().paths
  t.match(paths['/'].get.responses[200].content, { 'text/html': {} }, 'documented as HTML')
  t.notOk(paths['/'].get.security, 'without the session cookie: it needs none')
})

t.test('the page holds the form and controls the API needs, and no inline script or style', async (t) => {
  const html = webFile('index.html')
  t.match(html, /<form id="login"[^>]*>[\s\S]*name="username"[\s\S]*name="password"[\s\S]*<button type="submit">[\s\S]*<\/form>/)
  for (const id of ['user', 'sessions', 'end-others', 'logout', 'error']) t.match(html, new RegExp(`id="${id}"`), `#${id}`)
  t.match(html, /id="error" role="alert"/, 'errors are announced')
  t.match(html, /id="notice" role="status"/, 'and what happened')
  // Live regions announce what is written into them only if they were in the page before.
  for (const id of ['error', 'notice']) t.notMatch(html, new RegExp(`<p id="${id}"[^>]*\\shidden`), `#${id} is never hidden`)

  const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)]
  t.equal(scripts.length, 1)
  for (const [, attributes, body] of scripts) {
    t.match(attributes, /src="\/assets\/app\.js"/)
    t.equal(body?.trim(), '', 'the script is a file, not inline')
  }
  t.notMatch(html, /<style\b/, 'no style element')
  t.notMatch(html, /\sstyle=/, 'no style attribute')
  t.notMatch(html, /\son[a-z]+=/, 'no inline event handler')
})
