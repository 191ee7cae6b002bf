import type { RowDataPacket } from 'mysql2/promise'
import t from 'tap'
import { userKey } from '../src/session/identity.js'
import { LEASE_TABLE } from '../src/session/lease.js'
import { maintenanceLeaseName } from '../src/session/mysql-store.js'
import { baseEnv, buildWithDatabase, httpRequest, insertSessionRow, listen, type TestDatabase } from './helper.js'
import { runProcess } from './support/server-process.js'
import { signedCookie } from './support/signed-cookie.js'

// Sessions an Express app wrote with its own idea of the user, under a server with a mapper for
// it: nothing keys them as anonymous behind that server's back, and a legacy field never decides
// who the user is.

const cli = new URL('../src/cli/sessions.ts', import.meta.url).pathname
const cookie = { originalMaxAge: 3600000, expires: new Date(Date.now() + 3600000).toISOString(), httpOnly: true, path: '/', secure: false, sameSite: 'lax' }

async function storedRow (db: TestDatabase, id: string): Promise<{ key: string | null, data: Record<string, unknown> }> {
  const [rows] = await db.pool.query<RowDataPacket[]>('SELECT user_key, data FROM sessions WHERE session_id = ?', [id])
  return { key: rows[0]?.user_key as string | null, data: JSON.parse(String(rows[0]?.data)) }
}

t.test('passport\'s shape: `npm run sessions` never keys it as anonymous; the server with the mapper keys it as its user\'s', async (t) => {
  // Passport keeps the user at session.passport.user: no `user` field for a process without the mapper.
  const sessionUser = (data: Record<string, unknown>) => {
    const passport = data.passport as { user?: unknown } | undefined
    return typeof passport?.user === 'string' ? { name: passport.user } : undefined
  }
  const { app, db } = await buildWithDatabase(t, {}, { sessionUser })
  await app.sessionStore.countLive() // the table exists, upgraded
  // The server keys an upgraded table's rows once at start, in the background: let it finish
  // (its lease released) first, so the rows below meet only the CLI.
  const keying = maintenanceLeaseName('keying', db.name, 'sessions')
  for (let tries = 0; tries < 100; tries++) {
    const [rows] = await db.pool.query<RowDataPacket[]>(`SELECT held_until FROM ${LEASE_TABLE} WHERE name = ?`, [keying])
    if (rows.length === 1 && Number(rows[0]?.held_until) === 0) break
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  await insertSessionRow(db, 'passport-a', { cookie, passport: { user: 'ann' } })
  await insertSessionRow(db, 'passport-b', { cookie, passport: { user: 'ann' } })

  const pruned = await runProcess([cli, 'prune'], { ...baseEnv, ...db.env })
  t.equal(pruned.code, 0, pruned.stderr)
  const listed = await runProcess([cli, 'list-user', 'ann'], { ...baseEnv, ...db.env })
  t.equal(listed.code, 0, listed.stderr)
  t.equal((await storedRow(db, 'passport-a')).key, null, 'the CLI, which has no mapper, left the key unknown')

  await app.sessionStore.cleanupExpired()
  t.equal((await storedRow(db, 'passport-a')).key, userKey({ name: 'ann' }), 'the server\'s cleanup keyed it through its mapper')
  t.same((await app.sessionStore.sessionsOf({ name: 'ann' })).map((session) => session.id).sort(), ['passport-a', 'passport-b'])

  const base = await listen(app)
  const signed = signedCookie('passport-a', baseEnv.SESSION_SECRET as string)
  const me = await httpRequest(`${base}/session`, { headers: { cookie: signed } })
  t.match(me.json(), { authenticated: true, user: { name: 'ann' } }, 'logged in as the mapped user')
  const ended = await httpRequest(`${base}/session/all`, { method: 'DELETE', headers: { cookie: signed } })
  t.same(ended.json(), { revoked: 1 }, '"log out my other devices" ends the other passport session')
})

t.test('a legacy `sub` (or `iss`) never decides who the user is: the mapper\'s user does', async (t) => {
  const sessionUser = (data: Record<string, unknown>) => {
    const user = data.user as { username?: unknown } | undefined
    return typeof user?.username === 'string' ? { name: user.username } : undefined
  }
  const { app, db } = await buildWithDatabase(t, {}, { sessionUser })
  await app.sessionStore.countLive()
  const legacyUser = { username: 'ann', sub: 'auth0|1', iss: 'https://old-idp.example', roles: ['admin'] }
  await insertSessionRow(db, 'legacy-a', { cookie, user: legacyUser })
  await insertSessionRow(db, 'legacy-b', { cookie, user: { username: 'ann' } })
  const base = await listen(app)
  const signed = signedCookie('legacy-a', baseEnv.SESSION_SECRET as string)

  const me = await httpRequest(`${base}/session`, { headers: { cookie: signed } })
  t.same(me.json().user, { name: 'ann' }, 'ann, not the legacy subject')
  const list = await httpRequest(`${base}/session/all`, { headers: { cookie: signed } })
  t.equal(list.json().length, 2, 'her list holds both legacy sessions')

  const written = await httpRequest(`${base}/session/state`, { method: 'PUT', headers: { cookie: signed }, body: { theme: 'dark' } })
  t.equal(written.status, 200)
  const row = await storedRow(db, 'legacy-a')
  t.same(row.data.user, { username: 'ann', roles: ['admin'], name: 'ann' }, 'written with the mapped identity, the Express app\'s own fields kept')
  t.equal(row.key, userKey({ name: 'ann' }), 'and keyed as ann\'s')
})
