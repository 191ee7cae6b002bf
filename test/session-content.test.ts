import session from 'express-session'
import t from 'tap'
import { sessionContent } from '../src/session/persisted.js'

// sessionContent is how the bridge and the stores tell whether a route changed a session: all of
// it but the top-level cookie, as express-session's own hash sees it (its JSON.stringify replacer).
const asExpressSessionSeesIt = (data: object) => JSON.stringify(data, function (this: unknown, key, value: unknown) {
  return this === data && key === 'cookie' ? undefined : value
})

// express-session's own classes, as the bridge gets them (their types hide the constructors).
const { Session, Cookie } = session as unknown as {
  Session: new (req: object, data: object) => session.Session
  Cookie: new (options: object) => session.Cookie
}

function expressSession (fields: Record<string, unknown>): session.Session {
  return Object.assign(new Session({ sessionID: 'id' }, { cookie: new Cookie({ maxAge: 60000 }) }), fields)
}

t.test('the same text as express-session\'s replacer, for every shape a route makes', async (t) => {
  const shapes: Array<[string, object]> = [
    ['an empty session', expressSession({})],
    ['a logged-in one', expressSession({ createdAt: 1, user: { name: 'ann' }, state: { theme: 'dark' } })],
    ['a nested cookie key is data', expressSession({ state: { cookie: { consent: true }, list: [1, { cookie: 2 }] } })],
    ['undefined and null fields', expressSession({ gone: undefined, empty: null, when: new Date(0) })],
    ['a plain object', { cookie: { expires: null }, a: 1, b: [undefined, 'x'] }],
    ['no cookie at all', { a: { b: { c: 'd' } } }]
  ]
  for (const [name, data] of shapes) t.equal(sessionContent(data), asExpressSessionSeesIt(data), name)
})

t.test('the cookie alone never counts as a change; anything else does', async (t) => {
  const current = expressSession({ user: { name: 'ann' } })
  const before = sessionContent(current)
  current.cookie.maxAge = 1000
  t.equal(sessionContent(current), before, 'a renewed cookie')
  ;(current as unknown as { user: { name: string } }).user.name = 'bob'
  t.not(sessionContent(current), before, 'a nested change')
})
