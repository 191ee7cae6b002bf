import t from 'tap'
import { build, serve } from './helper.js'

/** `default-src 'self'; …` as { 'default-src': ["'self'"], … }. */
function directivesOf (header: unknown): Record<string, string[]> {
  return Object.fromEntries(String(header).split(';').map((part) => part.trim()).filter(Boolean).map((part) => {
    const [name, ...values] = part.split(/\s+/)
    return [name as string, values]
  }))
}

const usualHeaders = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'SAMEORIGIN',
  'referrer-policy': 'same-origin',
  'cross-origin-opener-policy': 'same-origin',
  'strict-transport-security': /^max-age=\d+/
}

// What a resource that is not a document gets (OWASP's REST set), and helmet's headers it does not.
const apiHeaders = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'SAMEORIGIN',
  'cross-origin-resource-policy': 'same-origin',
  'strict-transport-security': /^max-age=\d+/
}
const documentOnly = ['cross-origin-opener-policy', 'origin-agent-cluster', 'referrer-policy', 'x-dns-prefetch-control', 'x-download-options', 'x-permitted-cross-domain-policies', 'x-xss-protection']

t.test('the page gets a strict Content-Security-Policy and the usual headers', async (t) => {
  const app = await build(t, { SESSION_HOST: undefined })
  const res = await app.inject('/')
  t.match(res.headers, usualHeaders)
  const csp = directivesOf(res.headers['content-security-policy'])
  t.match(csp, {
    'default-src': ["'self'"],
    'script-src': ["'self'"],
    'style-src': ["'self'"],
    'script-src-attr': ["'none'"],
    'object-src': ["'none'"],
    'form-action': ["'self'"],
    'frame-ancestors': ["'self'"]
  })
  t.notOk(Object.values(csp).flat().includes("'unsafe-inline'"), 'nothing inline')
  t.notOk('upgrade-insecure-requests' in csp, 'the page works on a plain-HTTP development server')
})

t.test('the JSON API gets the headers that apply to it, and works with them', async (t) => {
  const { client } = await serve(t)
  const res = await client.request('/session')
  t.equal(res.status, 200)
  t.match(res.json(), { authenticated: false })
  t.match(res.headers, { ...apiHeaders, 'cache-control': 'no-store', 'content-type': /^application\/json/ })
  t.same(directivesOf(res.headers['content-security-policy']), { 'default-src': ["'none'"], 'frame-ancestors': ["'none'"] }, 'nothing loads or frames a JSON answer opened in a tab')
  t.same(documentOnly.filter((name) => name in res.headers), [], 'no header that applies to documents only')
  t.ok(client.cookie, 'the session cookie is set')
  t.match((await client.request('/session/state', { method: 'PUT', body: { theme: 'dark' } })).json(), { theme: 'dark' })
  t.match((await client.request('/session')).json(), { state: { theme: 'dark' } }, 'and sent back')
})

t.test('the API docs allow inline styles (Swagger UI sets one), nothing else does', async (t) => {
  const app = await build(t, { SESSION_HOST: undefined })
  for (const url of ['/docs', '/docs/static/swagger-initializer.js', '/docs/json']) {
    const res = await app.inject(url)
    t.equal(res.statusCode, 200, url)
    const csp = directivesOf(res.headers['content-security-policy'])
    t.same(csp['style-src'], ["'self'", "'unsafe-inline'"], `${url}: inline styles`)
    t.same(csp['script-src'], ["'self'"], `${url}: scripts as strict as the page's`)
  }
  t.same(directivesOf((await app.inject('/')).headers['content-security-policy'])['style-src'], ["'self'"], '/')
  for (const url of ['/health/live', '/docsearch']) {
    t.notOk(String((await app.inject(url)).headers['content-security-policy']).includes('unsafe-inline'), url)
  }
})

t.test('documents get helmet\'s whole set; every other answer the API set', async (t) => {
  const app = await build(t, { SESSION_HOST: undefined })
  for (const url of ['/', '/docs']) {
    const res = await app.inject(url)
    t.match(res.headers, usualHeaders, url)
    t.same(documentOnly.filter((name) => !(name in res.headers)), [], `${url}: every document header`)
  }
  for (const url of ['/assets/app.js', '/assets/style.css', '/health/live', '/metrics', '/no-such-route', '/session']) {
    const res = await app.inject(url)
    t.match(res.headers, apiHeaders, url)
    t.same(documentOnly.filter((name) => name in res.headers), [], `${url}: none of the document headers`)
  }
})
