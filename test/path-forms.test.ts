import t, { type Test } from 'tap'
import { Client, serve, type HttpResponse } from './helper.js'
import { loginAs, writeUsersFile } from './support/accounts.js'

// @fastify/express advisories describe path-scoped Express middleware skipped for an odd spelling
// of its path while Fastify's router still runs the route. Here express-session is mounted without
// a path and authorization is a Fastify preHandler: each spelling of a session route either runs
// that route with its session and its authorization, or runs no route at all.

const users = { ann: 'correct horse' }

/**
 * What Fastify's router makes of a spelling: the route it spells (after decoding), the
 * DELETE /session/all/:id route with what follows as the handle, no route (404, Fastify's
 * not-found answer) or a refusal before any route runs (400).
 */
type Outcome = 'route' | 'handle' | 404 | 400

interface Form {
  name: string
  /** The request target for a route's path; undefined where the form does not apply to it. */
  target: (path: string) => string | undefined
  outcome: Outcome
  /** Where DELETE /session/all differs: a trailing segment makes it DELETE /session/all/:id. */
  onDeleteAll?: Outcome
}

const hex = (char: string) => `%${char.charCodeAt(0).toString(16).toUpperCase()}`
/** The path with its last separator replaced; undefined for a one-segment path. */
const innerSlashAs = (path: string, by: string) => {
  const at = path.lastIndexOf('/')
  return at > 0 ? path.slice(0, at) + by + path.slice(at + 1) : undefined
}

const forms: Form[] = [
  { name: 'as routed', target: (p) => p, outcome: 'route' },
  { name: 'a letter %-encoded', target: (p) => p.replace('/s', '/%73'), outcome: 'route' },
  { name: 'the last letter %-encoded', target: (p) => p.slice(0, -1) + hex(p.slice(-1)), outcome: 'route' },
  { name: 'every letter %-encoded', target: (p) => p.replace(/[a-z]/g, hex), outcome: 'route' },
  { name: 'a query', target: (p) => `${p}?x`, outcome: 'route' },
  { name: 'a fragment', target: (p) => `${p}#x`, outcome: 'route' },
  { name: 'absolute-form', target: (p) => `http://localhost${p}`, outcome: 'route' },
  { name: 'absolute-form naming another host', target: (p) => `http://evil.example${p}`, outcome: 'route' },
  { name: 'a %-encoded % (decoded twice, it would spell the route)', target: (p) => p.replace('/s', '/%2573'), outcome: 404 },
  { name: 'a leading //', target: (p) => `/${p}`, outcome: 404 },
  { name: 'absolute-form with a doubled slash', target: (p) => `http://localhost/${p}`, outcome: 404 },
  { name: 'a trailing /', target: (p) => `${p}/`, outcome: 404, onDeleteAll: 'handle' },
  { name: 'a trailing /.', target: (p) => `${p}/.`, outcome: 404, onDeleteAll: 'handle' },
  { name: 'the inner / doubled', target: (p) => innerSlashAs(p, '//'), outcome: 404 },
  { name: 'a ;x after the path', target: (p) => `${p};x`, outcome: 404 },
  { name: 'a ; after the first segment', target: (p) => p.replace('/session', '/session;'), outcome: 404 },
  { name: 'a /./ in front', target: (p) => `/.${p}`, outcome: 404 },
  { name: 'a /x/../ in front', target: (p) => `/x/..${p}`, outcome: 404 },
  { name: 'a %-encoded /./ in front', target: (p) => `/%2e${p}`, outcome: 404 },
  { name: 'a %-encoded /x/../ in front', target: (p) => `/x/%2e%2e${p}`, outcome: 404 },
  { name: 'upper case', target: (p) => p.toUpperCase(), outcome: 404 },
  { name: 'ſ for s (it upper-cases to S)', target: (p) => p.replace('/s', '/%C5%BF'), outcome: 404 },
  { name: 'a %2F at the end', target: (p) => `${p}%2F`, outcome: 404 },
  { name: 'the inner / as %2F', target: (p) => innerSlashAs(p, '%2F'), outcome: 404 },
  { name: 'the inner / as \\', target: (p) => innerSlashAs(p, '\\'), outcome: 404 },
  { name: 'the inner / as %5C', target: (p) => innerSlashAs(p, '%5C'), outcome: 404 },
  { name: 'a %3F (an encoded ?)', target: (p) => `${p}%3Fx`, outcome: 404 },
  { name: 'a %00 at the end', target: (p) => `${p}%00`, outcome: 404 },
  { name: 'a %20 at the end', target: (p) => `${p}%20`, outcome: 404 },
  { name: 'a leading \\', target: (p) => `\\${p.slice(1)}`, outcome: 400 },
  { name: 'a lone %', target: (p) => `${p}%`, outcome: 400 },
  { name: 'invalid UTF-8 (%C0%AF, an overlong /)', target: (p) => `${p}%C0%AF`, outcome: 400 },
  { name: 'a malformed %-escape in the query', target: (p) => `${p}?x=%`, outcome: 400 },
  { name: 'asterisk-form', target: (p) => `*${p}`, outcome: 400 }
]

/** Each form that applies to the path, with its target and what the router makes of it. */
function spellings (method: string, path: string): Array<{ label: string, target: string, outcome: Outcome }> {
  return forms.flatMap((form) => {
    const target = form.target(path)
    if (target === undefined) return []
    const outcome = method === 'DELETE' && path === '/session/all' ? form.onDeleteAll ?? form.outcome : form.outcome
    return [{ label: `${method} ${JSON.stringify(target)} (${form.name})`, target, outcome }]
  })
}

/** No route ran: the router's own answer, and no session loaded or created. */
function noRoute (t: Test, res: HttpResponse, outcome: Outcome, label: string): void {
  t.equal(res.status, outcome, label)
  if (outcome === 404) t.match(res.json().message, /^Route [A-Z]+:.* not found$/, `${label}: the not-found answer`)
  t.notOk(res.headers['set-cookie'], `${label}: no session loaded`)
}

const loginRequired = { statusCode: 401, error: 'Unauthorized', message: 'Log in first' }

async function loggedIn (base: string): Promise<Client> {
  const client = new Client(base)
  const res = await loginAs(client, 'ann', users.ann)
  if (res.status !== 200) throw new Error(`login: ${res.status}`)
  return client
}

const authenticated = async (client: Client) => (await client.request('/session')).json().authenticated as boolean

t.test('GET /session/all: listed only for its user, with the session, or not routed', async (t) => {
  const { base, client: visitor } = await serve(t, { AUTH_USERS_FILE: writeUsersFile(t, users) })
  const ann = await loggedIn(base)
  for (const { label, target, outcome } of spellings('GET', '/session/all')) {
    const anonymous = await visitor.request('', { target })
    const own = await ann.request('', { target })
    if (outcome === 'route') {
      t.same([anonymous.status, anonymous.json()], [401, loginRequired], `${label}, anonymous`)
      t.equal(anonymous.headers['cache-control'], 'no-store', `${label}: the session scope answered`)
      t.equal(own.status, 200, `${label}, logged in`)
      t.match(own.json(), [{ current: true }], `${label}: ann's own session, found through her session`)
    } else {
      noRoute(t, anonymous, outcome, `${label}, anonymous`)
      noRoute(t, own, outcome, `${label}, logged in`)
    }
  }
})

t.test('DELETE /session/all: ends other sessions only for their user, or is not routed', async (t) => {
  const { base, client: visitor } = await serve(t, { AUTH_USERS_FILE: writeUsersFile(t, users) })
  const ann = await loggedIn(base)
  for (const { label, target, outcome } of spellings('DELETE', '/session/all')) {
    const phone = await loggedIn(base)
    const anonymous = await visitor.request('', { method: 'DELETE', target })
    const own = await ann.request('', { method: 'DELETE', target })
    if (outcome === 'route' || outcome === 'handle') {
      t.same([anonymous.status, anonymous.json()], [401, loginRequired], `${label}, anonymous`)
    } else {
      noRoute(t, anonymous, outcome, `${label}, anonymous`)
    }
    if (outcome === 'route') {
      t.same([own.status, own.json()], [200, { revoked: 1 }], `${label}, logged in`)
    } else if (outcome === 'handle') {
      t.same([own.status, own.json()], [404, { statusCode: 404, error: 'Not Found', message: 'No such session of yours' }], `${label}, logged in`)
    } else {
      noRoute(t, own, outcome, `${label}, logged in`)
    }
    t.equal(await authenticated(phone), outcome !== 'route', `${label}: ann's other session ${outcome === 'route' ? 'ended' : 'untouched'}`)
    t.equal(await authenticated(ann), true, `${label}: the caller's own session stays`)
    // So that the next form finds exactly one other session to end.
    await phone.request('/session/logout', { method: 'POST' })
  }
})

t.test('PUT /session/state: stored in the caller\'s own session, or not routed', async (t) => {
  const { base, client: visitor } = await serve(t, { AUTH_USERS_FILE: writeUsersFile(t, users) })
  const ann = await loggedIn(base)
  for (const { label, target, outcome } of spellings('PUT', '/session/state')) {
    const state = { form: label }
    for (const [who, client] of [['anonymous', visitor], ['logged in', ann]] as const) {
      const res = await client.request('', { method: 'PUT', target, body: state })
      const after = (await client.request('/session')).json()
      if (outcome === 'route') {
        t.same([res.status, res.json()], [200, state], `${label}, ${who}`)
        t.same(after.state, state, `${label}, ${who}: stored in the caller's session`)
      } else {
        noRoute(t, res, outcome, `${label}, ${who}`)
        t.notSame(after.state, state, `${label}, ${who}: nothing stored`)
      }
      t.equal(after.authenticated, client === ann, `${label}, ${who}: still ${who}`)
    }
  }
})

t.test('GET /session: each client sees its own session, or nothing is routed', async (t) => {
  const { base, client: visitor } = await serve(t, { AUTH_USERS_FILE: writeUsersFile(t, users) })
  const ann = await loggedIn(base)
  for (const { label, target, outcome } of spellings('GET', '/session')) {
    const anonymous = await visitor.request('', { target })
    const own = await ann.request('', { target })
    if (outcome === 'route') {
      t.match([anonymous.status, anonymous.json()], [200, { authenticated: false }], `${label}, anonymous`)
      t.match([own.status, own.json()], [200, { authenticated: true, user: { name: 'ann' } }], `${label}: ann's session was loaded`)
    } else {
      noRoute(t, anonymous, outcome, `${label}, anonymous`)
      noRoute(t, own, outcome, `${label}, logged in`)
    }
  }
})

t.test('POST /session/logout: ends the caller\'s own session, or is not routed', async (t) => {
  const { base, client: visitor } = await serve(t, { AUTH_USERS_FILE: writeUsersFile(t, users) })
  for (const { label, target, outcome } of spellings('POST', '/session/logout')) {
    const ann = await loggedIn(base)
    const cookie = ann.cookie as string
    const anonymous = await visitor.request('', { method: 'POST', target })
    const own = await ann.request('', { method: 'POST', target })
    const replayed = new Client(base)
    replayed.cookie = cookie
    if (outcome === 'route') {
      t.equal(anonymous.status, 204, `${label}, anonymous`)
      t.equal(own.status, 204, `${label}, logged in`)
      t.match(String(own.headers['set-cookie']), /^sid=; /, `${label}: the cookie cleared`)
      t.equal(await authenticated(replayed), false, `${label}: the session itself ended, not only the cookie`)
    } else {
      noRoute(t, anonymous, outcome, `${label}, anonymous`)
      noRoute(t, own, outcome, `${label}, logged in`)
      t.equal(await authenticated(replayed), true, `${label}: still logged in`)
    }
  }
})
