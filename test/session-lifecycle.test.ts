import { request as sendRequest } from 'node:http'
import type { RowDataPacket } from 'mysql2/promise'
import t from 'tap'
import { Client, countRows, serve } from './helper.js'
import { loginAs, writeUsersFile } from './support/accounts.js'

const users = { ann: 'correct horse' }
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

t.test('logout deletes the row and clears the cookie; replaying the old cookie is anonymous', async (t) => {
  const { client, db } = await serve(t, { AUTH_USERS_FILE: writeUsersFile(t, users) })
  await loginAs(client, 'ann', 'correct horse')
  const loggedInCookie = client.cookie as string
  t.equal(await countRows(db), 1)

  const res = await client.request('/session/logout', { method: 'POST' })
  t.equal(res.status, 204)
  t.equal(res.body, '')
  t.match(String(res.headers['set-cookie']), /^sid=; Path=\/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; HttpOnly; SameSite=Lax$/)
  t.equal(await countRows(db), 0, 'the row is gone')

  const replay = new Client(client.base)
  replay.cookie = loggedInCookie
  t.same((await replay.request('/session')).json().authenticated, false, 'the old cookie is anonymous')
  t.equal((await replay.request('/session/all')).status, 401)
})

t.test('logout race: a slow request that changes the session and ends after logout does not bring it back', async (t) => {
  const { client, db, base } = await serve(t, { AUTH_USERS_FILE: writeUsersFile(t, users) })
  await loginAs(client, 'ann', 'correct horse')
  const body = JSON.stringify({ written: 'by the slow request' })

  // The slow request: headers now (the session is loaded when they arrive), the body later.
  const slow = new Promise<number>((resolve, reject) => {
    const req = sendRequest(`${base}/session/state`, {
      method: 'PUT',
      headers: { cookie: client.cookie as string, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) }
    }, (res) => {
      t.notOk(res.headers['set-cookie'], 'no cookie names the ended session')
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('error', reject)
    req.flushHeaders()
    req.write(body.slice(0, 3))
    setTimeout(() => {
      // Logout completes while the slow request still waits for its body.
      client.request('/session/logout', { method: 'POST' }).then((logout) => {
        t.equal(logout.status, 204)
        req.end(body.slice(3))
      }, reject)
    }, 300)
  })
  t.equal(await slow, 409, 'the late write is refused, and says so')
  t.equal(await countRows(db), 0, 'the logged-out row stays deleted (an upsert would have re-inserted it)')
})

t.test('idle timeout: activity keeps the session, SESSION_MAX_AGE of silence ends it', async (t) => {
  const { client } = await serve(t, { AUTH_USERS_FILE: writeUsersFile(t, users), SESSION_MAX_AGE: '2000', SESSION_TOUCH_AFTER: '100' })
  await loginAs(client, 'ann', 'correct horse')
  for (let i = 0; i < 6; i++) {
    await sleep(500)
    t.equal((await client.request('/session')).json().authenticated, true, `still logged in after ${(i + 1) * 500} ms of activity`)
  }
  await sleep(3100)
  t.equal((await client.request('/session')).json().authenticated, false, 'ended after being idle longer than SESSION_MAX_AGE')
})

t.test('absolute timeout: the session ends that long after login however active', async (t) => {
  const { client } = await serve(t, { AUTH_USERS_FILE: writeUsersFile(t, users), SESSION_ABSOLUTE_TIMEOUT: '2000' })
  await loginAs(client, 'ann', 'correct horse')
  const me = (await client.request('/session')).json()
  t.ok(Date.parse(me.expiresAt) <= Date.parse(me.createdAt) + 2000, 'expiresAt reports the absolute limit')
  let authenticated = true
  const started = Date.now()
  while (authenticated && Date.now() - started < 4000) {
    await sleep(250)
    authenticated = (await client.request('/session')).json().authenticated
  }
  const lasted = Date.now() - started
  t.equal(authenticated, false)
  t.ok(lasted >= 1500 && lasted < 3000, `ended about 2 s after login (${lasted} ms)`)
})

t.test('the timeouts are read from the stored row, not from the client', async (t) => {
  const { client, db } = await serve(t, { AUTH_USERS_FILE: writeUsersFile(t, users), SESSION_ABSOLUTE_TIMEOUT: '3600000' })
  await loginAs(client, 'ann', 'correct horse')
  await db.pool.query("UPDATE sessions SET data = JSON_SET(data, '$.createdAt', ?)", [Date.now() - 3600001])
  t.equal((await client.request('/session')).json().authenticated, false, 'a stored login time past the absolute timeout')

  await loginAs(client, 'ann', 'correct horse')
  await db.pool.query('UPDATE sessions SET expires = ?', [Math.floor(Date.now() / 1000) - 1])
  t.equal((await client.request('/session')).json().authenticated, false, 'a stored expiry in the past')
})

t.test('the client keeps its own JSON state, up to 4 KiB', async (t) => {
  const { client, db } = await serve(t)
  const state = { theme: 'dark', cart: [1, 2, 3] }
  const put = await client.request('/session/state', { method: 'PUT', body: state })
  t.equal(put.status, 200)
  t.same(put.json(), state)
  t.same((await client.request('/session')).json().state, state)

  const jsonString = (bytes: number) => JSON.stringify('x'.repeat(bytes - 2))
  t.equal((await client.request('/session/state', { method: 'PUT', body: jsonString(4096) })).status, 200, 'exactly 4096 bytes')
  const [[before]] = await db.pool.query<import('mysql2').RowDataPacket[]>('SELECT data FROM sessions')

  for (const [label, body] of [['4097 bytes', jsonString(4097)], ['64 KiB', jsonString(65536)]] as const) {
    const res = await client.request('/session/state', { method: 'PUT', body })
    t.equal(res.status, 413, label)
    t.equal(res.json().statusCode, 413)
  }
  const [[after]] = await db.pool.query<import('mysql2').RowDataPacket[]>('SELECT data FROM sessions')
  t.equal(after?.data, before?.data, 'a refused state never reaches the store')

  t.equal((await client.request('/session/state', { method: 'PUT', body: '{"a":' })).status, 400, 'not JSON')
  t.equal((await client.request('/session/state', { method: 'PUT', body: '{"__proto__":{"x":1}}' })).status, 400, 'prototype poisoning')
  t.equal((await client.request('/session/state', { method: 'PUT' })).status, 400, 'no body')
})

t.test('a state is taken only as JSON: any other media type is 415 and nothing is stored', async (t) => {
  const { client, db } = await serve(t)
  const state = { theme: 'dark' }
  t.equal((await client.request('/session/state', { method: 'PUT', body: state })).status, 200)
  const [[before]] = await db.pool.query<import('mysql2').RowDataPacket[]>('SELECT data FROM sessions')

  // Fastify also parses text/plain by default: the state would be a string.
  for (const [type, body] of [
    ['text/plain', '"a string"'],
    ['text/plain; charset=utf-8', 'not json'],
    ['application/x-www-form-urlencoded', 'theme=light'],
    ['multipart/form-data; boundary=x', '--x--'],
    ['application/jsonx', '{"theme":"light"}'],
    ['application/vnd.api+json', '{"theme":"light"}'],
    ['text/json', '{"theme":"light"}']
  ]) {
    const res = await client.request('/session/state', { method: 'PUT', body, headers: { 'content-type': type } })
    t.equal(res.status, 415, type)
    t.match(res.headers['content-type'], /^application\/json/, `${type}: a JSON error body`)
    t.match(res.json(), { statusCode: 415, error: 'Unsupported Media Type', message: /application\/json/ }, type)
  }
  const [[after]] = await db.pool.query<import('mysql2').RowDataPacket[]>('SELECT data FROM sessions')
  t.equal(after?.data, before?.data, 'nothing reached the store')
  t.same((await client.request('/session')).json().state, state)

  for (const type of ['application/json; charset=utf-8', 'Application/JSON;charset=UTF-8']) {
    const res = await client.request('/session/state', { method: 'PUT', body: { type }, headers: { 'content-type': type } })
    t.same([res.status, res.json()], [200, { type }], `${type} is JSON`)
  }
})

t.test('a state the body parser accepted is read back, whatever its key names', async (t) => {
  const { client } = await serve(t, {})
  const state = { constructor: 'x', prototype: { constructor: 1 }, nested: { constructor: { name: 'kept' } } }
  t.equal((await client.request('/session/state', { method: 'PUT', body: state })).status, 200)
  const first = await client.request('/session')
  t.same(first.json().state, state, 'the stored state comes back')
  t.same((await client.request('/session')).json().state, state, 'and again on the next visit: the session was not thrown away')
  t.equal((await client.request('/session/state', { method: 'PUT', body: '{"constructor":{"prototype":{"x":1}}}' })).status, 400, 'constructor poisoning is refused at the door')
})

t.test('the client\'s state is carried over to the new session at login', async (t) => {
  const { client } = await serve(t, { AUTH_USERS_FILE: writeUsersFile(t, users) })
  await client.request('/session/state', { method: 'PUT', body: { before: 'login' } })
  await loginAs(client, 'ann', 'correct horse')
  const me = (await client.request('/session')).json()
  t.equal(me.authenticated, true)
  t.same(me.state, { before: 'login' }, 'the state, and nothing else, moves to the new id')
})

t.test("GET /session's expiresAt is the expiry the store enforces: it stays put between reads until a touch moves it", async (t) => {
  const { client, db } = await serve(t, { AUTH_USERS_FILE: writeUsersFile(t, users), SESSION_TOUCH_AFTER: '4000' })
  await loginAs(client, 'ann', 'correct horse')
  const storedExpiry = async () => {
    const [rows] = await db.pool.query<RowDataPacket[]>('SELECT expires FROM sessions')
    t.equal(rows.length, 1, 'one row')
    return new Date(Number(rows[0]?.expires) * 1000).toISOString()
  }
  const first = (await client.request('/session')).json()
  t.equal(first.expiresAt, await storedExpiry(), 'what the row holds')
  t.ok(Date.parse(first.createdAt) <= Date.parse(first.expiresAt))
  await sleep(1100)
  const second = (await client.request('/session')).json()
  t.equal(second.expiresAt, first.expiresAt, 'a read that does not touch the row does not move it')
  t.equal(second.expiresAt, await storedExpiry())
  // 5 s after the first read the expiry, in whole seconds, lags by at least 4 s: SESSION_TOUCH_AFTER.
  await sleep(3900)
  const touched = (await client.request('/session')).json()
  t.ok(Date.parse(touched.expiresAt) >= Date.parse(first.expiresAt) + 4000, 'a read that touches the row reports the new expiry')
  // The touch is written without the answer waiting for it, and rounded to whole seconds a few
  // milliseconds after the route's answer was: the two may differ by one second.
  let stored = await storedExpiry()
  for (let i = 0; i < 20 && stored === first.expiresAt; i++) {
    await sleep(50)
    stored = await storedExpiry()
  }
  t.ok(Math.abs(Date.parse(stored) - Date.parse(touched.expiresAt)) <= 1000, `and the row holds it (${stored})`)
})
