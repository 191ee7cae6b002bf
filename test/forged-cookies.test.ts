import { randomBytes } from 'node:crypto'
import type { RowDataPacket } from 'mysql2/promise'
import t, { type Test } from 'tap'
import { baseEnv, build, httpRequest, listen, privateDatabase, sessionCookie, type HttpResponse } from './helper.js'
import { MARIADBD } from './support/private-mariadb.js'
import { sessionIdOf, signedCookie, verifiedSessionId } from './support/signed-cookie.js'
import { sendAll, type PathRequest } from './support/traffic.js'

// Hostile Cookie headers against a session that exists. Store reads are counted on a private
// MariaDB (Com_select: SHOW STATUS does not add to it, the app's only SELECT on a session
// route is the session read), so "no read when the signature is bad" is measured, not assumed.

const needsMariadbd = { skip: MARIADBD ? false : 'mariadbd is not installed' }
const secret = baseEnv.SESSION_SECRET as string
const victimCreatedAt = Date.UTC(2001, 8, 9, 1, 46, 40)

/** One server, one app and one victim for the whole file, torn down at its end. */
async function setUp (t: Test) {
  const db = await privateDatabase(t)
  const base = await listen(await build(t, db.env))
  await httpRequest(`${base}/session`) // creates the table: the next SELECTs are session reads only
  const victimId = randomBytes(24).toString('base64url')
  const cookie = { originalMaxAge: 3600000, expires: new Date(Date.now() + 3600000).toISOString(), httpOnly: true, path: '/' }
  await db.admin.query('INSERT INTO sessions (session_id, expires, data) VALUES (?, ?, ?)', [victimId, Math.floor(Date.now() / 1000) + 3600,
    JSON.stringify({ cookie, createdAt: victimCreatedAt, user: { name: 'victim' } })])
  const selects = async () => {
    const [rows] = await db.admin.query<RowDataPacket[]>("SHOW GLOBAL STATUS LIKE 'Com_select'")
    return Number(rows[0]?.Value)
  }
  /** Sends the requests and counts the store reads they caused together. */
  const send = async (requests: PathRequest[]) => {
    const before = await selects()
    const answers = await sendAll(base, requests)
    return { answers, reads: await selects() - before }
  }
  return { victimId, victimValue: signedCookie(victimId, secret).slice('sid='.length), send }
}

type Fixture = Awaited<ReturnType<typeof setUp>>

/** The ways an answer could hand over or leak the victim's session; empty when it did not. */
function victimLeaks (res: HttpResponse, victimId: string): string[] {
  const leaks: string[] = []
  if (res.status === 200 && res.json().authenticated !== false) leaks.push('an authenticated session')
  if (res.status === 200 && Date.parse(res.json().createdAt) === victimCreatedAt) leaks.push('the victim\'s session')
  if (sessionIdOf(sessionCookie(res.headers['set-cookie'])) === victimId) leaks.push('the victim\'s id in Set-Cookie')
  return leaks
}

/** Replaces the character at `index` with another one of the same alphabet. */
function changeOne (text: string, index: number): string {
  const replacement = text[index] === 'A' ? 'B' : 'A'
  return text.slice(0, index) + replacement + text.slice(index + 1)
}

const fixture = MARIADBD ? await setUp(t) : undefined

t.test('the fixture itself: the victim\'s own cookie reads the store once and gets the victim\'s session', needsMariadbd, async (t) => {
  const { victimValue, send } = fixture as Fixture
  const { answers: [res], reads } = await send([{ headers: { cookie: `sid=${victimValue}` } }])
  t.match(res?.json(), { authenticated: true, user: { name: 'victim' } })
  t.equal(reads, 1)
})

t.test('forged and malformed cookies: a fresh anonymous session or a 4xx, and no store read unless the signature is valid', needsMariadbd, async (t) => {
  const { victimId, victimValue, send } = fixture as Fixture
  const signed = decodeURIComponent(victimValue) // s:<id>.<signature>
  const dot = signed.lastIndexOf('.')
  // [what is sent, the Cookie header, store reads it may cause]
  const cases: Array<[string, string, number]> = [
    ['the id unsigned', `sid=${victimId}`, 0],
    ['the id with the s: prefix and no signature', `sid=${encodeURIComponent(`s:${victimId}`)}`, 0],
    ['one character of the id changed', `sid=${encodeURIComponent(changeOne(signed, 2))}`, 0],
    ['one character of the signature changed', `sid=${encodeURIComponent(changeOne(signed, dot + 1))}`, 0],
    ['the signature cut short', `sid=${encodeURIComponent(signed.slice(0, -1))}`, 0],
    ['bytes after the signature', `sid=${victimValue}x`, 0],
    ['a NUL after the signature', `sid=${victimValue}%00`, 0],
    ['signed with another secret', signedCookie(victimId, 'another-secret-another-secret-another-secret'), 0],
    ['a valid signature for an id not in the store', signedCookie(randomBytes(24).toString('base64url'), secret), 1],
    ['a valid signature for an id made of SQL', signedCookie("x' OR '1'='1", secret), 1],
    ['duplicate names, the forged one first', `sid=${encodeURIComponent(changeOne(signed, dot + 1))}; sid=${victimValue}`, 0],
    ['bad %-encoding', `sid=s%3A${victimId}.%E0%A4%A`, 0],
    ['a lone %', 'sid=%', 0],
    ['an empty value', 'sid=', 0],
    ['the victim\'s value under another name', `SID=${victimValue}; sid2=${victimValue}; connect.sid=${victimValue}`, 0],
    ['a 4 KiB Cookie header', `pad=${'a'.repeat(4096)}; sid=${encodeURIComponent(changeOne(signed, 2))}`, 0],
    ['a 64 KiB Cookie header', `pad=${'a'.repeat(65536)}; sid=${victimValue}`, 0]
  ]
  for (const [label, cookie, allowedReads] of cases) {
    const { answers: [res], reads } = await send([{ headers: { cookie } }])
    t.ok(res && res.status < 500, `${label}: answered ${res?.status}`)
    t.same(victimLeaks(res as HttpResponse, victimId), [], `${label}: not the victim's session`)
    t.equal(reads, allowedReads, `${label}: ${allowedReads} store read(s)`)
  }
})

t.test('a session id in the query string, the path or the body is ignored', needsMariadbd, async (t) => {
  const { victimId, victimValue, send } = fixture as Fixture
  const cases: Array<[string, PathRequest]> = [
    ['the signed cookie value in the query string', { path: `/session?sid=${victimValue}` }],
    ['the bare id in the query string', { path: `/session?sid=${victimId}&sessionId=${victimId}` }],
    ['the id in the path', { path: `/session/${victimId}` }],
    ['the id as a path parameter', { path: `/session;sid=${victimValue}` }],
    ['the id in a JSON body', { headers: { 'content-type': 'application/json' }, body: { sid: decodeURIComponent(victimValue), sessionId: victimId } }],
    ['the id in a form body', { headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `sid=${victimValue}` }]
  ]
  for (const [label, request] of cases) {
    const { answers: [res], reads } = await send([request])
    t.ok(res && res.status < 500, `${label}: answered ${res?.status}`)
    t.same(victimLeaks(res as HttpResponse, victimId), [], `${label}: not the victim's session`)
    t.equal(reads, 0, `${label}: no store read`)
  }
})

/** A small seeded generator (mulberry32), so the corpus is the same on every run. */
function seeded (seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

/** `count` Cookie headers, none of which carries a validly signed session id. */
function hostileCorpus (count: number, victimValue: string, victimId: string): string[] {
  const random = seeded(4)
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T
  // Every byte Node lets a client put in a header value: tab, printable ASCII, and 0x80-0xff.
  const alphabet = ['\t', ...Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)), ...Array.from({ length: 128 }, (_, i) => String.fromCharCode(128 + i))]
  const junk = (length: number) => Array.from({ length }, () => pick(alphabet)).join('')
  const token = (length: number) => randomToken(random, length)
  const signed = decodeURIComponent(victimValue)
  const forged = [
    () => junk(Math.floor(random() * 300)),
    () => `sid=${junk(Math.floor(random() * 100))}`,
    () => `sid=s:${token(32)}.${token(43)}`,
    () => `sid=${encodeURIComponent(changeOne(signed, 2 + Math.floor(random() * (signed.length - 2))))}`,
    () => `sid=${victimValue}${junk(1 + Math.floor(random() * 20))}`,
    () => `sid=${junk(1 + Math.floor(random() * 3))}${victimValue}`,
    () => signedCookie(victimId, token(40)),
    () => `sid=s:${token(32)}.${token(43)}; sid=${victimValue}`,
    () => Array.from({ length: 1 + Math.floor(random() * 50) }, () => `${token(1 + Math.floor(random() * 8))}=${junk(Math.floor(random() * 40))}`).join('; '),
    () => `sid=s%3A${token(10)}%${junk(2)}${token(10)}.%${token(1)}`,
    () => `${pick(['SID', 'Sid', 'sid2', 'xsid', 'sid.', 'connect.sid'])}=${victimValue}`,
    () => `pad=${'x'.repeat(8000 + Math.floor(random() * 12000))}; sid=${victimValue}x`
  ]
  const corpus: string[] = []
  while (corpus.length < count) {
    const header = pick(forged)()
    // Whatever the template meant, keep only what express-session itself would not accept.
    if (verifiedSessionId(header, secret) === undefined) corpus.push(header)
  }
  return corpus
}

function randomToken (random: () => number, length: number): string {
  const letters = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
  return Array.from({ length }, () => letters[Math.floor(random() * letters.length)]).join('')
}

t.test('3,000 generated hostile Cookie headers: never a 5xx, never the victim\'s session, no store read', needsMariadbd, async (t) => {
  const { victimId, victimValue, send } = fixture as Fixture
  const corpus = hostileCorpus(3000, victimValue, victimId)
  const { answers, reads } = await send(corpus.map((cookie) => ({ headers: { cookie } })))
  const statuses = new Map<number, number>()
  for (const res of answers) statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1)
  t.ok([...statuses.keys()].every((status) => status === 200 || (status >= 400 && status < 500)), `only 200 and 4xx: ${JSON.stringify(Object.fromEntries(statuses))}`)
  t.same(answers.flatMap((res) => victimLeaks(res, victimId)), [], 'never the victim\'s session')
  t.equal(reads, 0, 'not one store read')
})
