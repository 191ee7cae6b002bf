import t from 'tap'
import { countRows, httpRequest, serve } from './helper.js'

// Over real sockets: whether a request is secure depends on the peer address and TRUST_PROXY.

t.test('a Secure cookie over plain HTTP: no session, no row, no cookie', async (t) => {
  const { db, base } = await serve(t, { SESSION_COOKIE_SECURE: 'true' })
  for (let i = 0; i < 50; i++) {
    const res = await httpRequest(`${base}/session`)
    t.equal(res.status, 200)
    t.notOk(res.headers['set-cookie'])
    if (i === 0) t.same(JSON.parse(res.body), { authenticated: false })
  }
  t.equal(await countRows(db), 0, '50 plain-HTTP requests write no row (the naive port writes 51)')
})

t.test('behind a trusted proxy that says https: cookie and row', async (t) => {
  const { db, base } = await serve(t, { SESSION_COOKIE_SECURE: 'true', TRUST_PROXY: '127.0.0.1' })
  const res = await httpRequest(`${base}/session`, { headers: { 'x-forwarded-proto': 'https' } })
  t.match(String(res.headers['set-cookie']), /; Secure/)
  t.equal(await countRows(db), 1)
})

t.test('a spoofed X-Forwarded-Proto from an untrusted address changes nothing', async (t) => {
  const { db, base } = await serve(t, { SESSION_COOKIE_SECURE: 'true', TRUST_PROXY: '10.0.0.0/8' })
  const res = await httpRequest(`${base}/session`, { headers: { 'x-forwarded-proto': 'https' } })
  t.equal(res.status, 200)
  t.notOk(res.headers['set-cookie'])
  t.equal(await countRows(db), 0)
})

t.test('SESSION_COOKIE_SECURE=auto: plain HTTP gets a cookie without Secure', async (t) => {
  const { db, base } = await serve(t, { SESSION_COOKIE_SECURE: 'auto' })
  const res = await httpRequest(`${base}/session`)
  const cookie = String(res.headers['set-cookie'])
  t.match(cookie, /^sid=/)
  t.notMatch(cookie, /Secure/)
  t.equal(await countRows(db), 1)
})
