// A browser stand-in for SSO tests: plain fetch with manual redirects and two cookie jars (the app's
// and the provider's), through the dev provider's own login page (scripts/sso/dev-provider.ts).

const REQUEST_TIMEOUT_MS = 10000
const MAX_STEPS = 20

export interface SsoLogin {
  /** The app's cookies after the callback ('sid=...'): the logged-in session. */
  appCookie: string
  /** The full callback URL the provider redirected to (tests replay it). */
  callbackUrl: string
  /** Where the app's callback redirected (its Location header as sent, e.g. the returnTo path). */
  location: string
  callbackStatus: number
  /** The provider's cookies, for RP-initiated logout at the provider in the same "browser". */
  providerCookies: string
}

export interface ProviderLogin {
  /** The first redirect that leaves the provider: the client's redirect_uri with code and state. */
  callbackUrl: string
  providerCookies: string
}

/**
 * Cookies by name, for one origin. Paths are ignored: the provider scopes its interaction cookies
 * by path, and a sequential flow only ever needs the latest of each name.
 */
export class CookieJar {
  readonly #cookies = new Map<string, string>()

  constructor (header = '') {
    for (const pair of header.split(';')) {
      const eq = pair.indexOf('=')
      if (eq > 0) this.#cookies.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim())
    }
  }

  store (response: Response): void {
    for (const line of response.headers.getSetCookie()) {
      const [pair = '', ...attributes] = line.split(';')
      const eq = pair.indexOf('=')
      if (eq <= 0) continue
      const name = pair.slice(0, eq).trim()
      const value = pair.slice(eq + 1).trim()
      if (value === '' || attributes.some(isExpiry)) this.#cookies.delete(name)
      else this.#cookies.set(name, value)
    }
  }

  header (): string {
    return [...this.#cookies].map(([name, value]) => `${name}=${value}`).join('; ')
  }
}

function isExpiry (attribute: string): boolean {
  const [key = '', value = ''] = attribute.split('=').map((part) => part.trim())
  if (/^max-age$/i.test(key)) return Number(value) <= 0
  if (/^expires$/i.test(key)) return Date.parse(attribute.slice(attribute.indexOf('=') + 1)) <= Date.now()
  return false
}

interface Answer {
  method: string
  url: string
  status: number
  /** Resolved against the request's URL. */
  location: string | undefined
  /** As sent. */
  rawLocation: string | undefined
  body: string
}

async function send (url: string, jar: CookieJar, form?: URLSearchParams): Promise<Answer> {
  const headers: Record<string, string> = {}
  const cookie = jar.header()
  if (cookie) headers.cookie = cookie
  if (form) headers['content-type'] = 'application/x-www-form-urlencoded'
  const response = await fetch(url, {
    method: form ? 'POST' : 'GET',
    headers,
    body: form?.toString(),
    redirect: 'manual',
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS)
  })
  jar.store(response)
  const rawLocation = response.headers.get('location') ?? undefined
  return {
    method: form ? 'POST' : 'GET',
    url,
    status: response.status,
    location: rawLocation && new URL(rawLocation, url).href,
    rawLocation,
    body: await response.text()
  }
}

function unexpected (what: string, answer: Answer): Error {
  const snippet = answer.body.replace(/<style[\s\S]*?<\/style>/gi, '').replace(/\s+/g, ' ').slice(0, 400)
  return new Error(`${what}: unexpected ${answer.status} from ${answer.method} ${answer.url}${answer.location ? ` (Location ${answer.location})` : ''}: ${snippet}`)
}

const isRedirect = (status: number) => status >= 300 && status < 400

interface HtmlForm {
  id: string | undefined
  action: string
  fields: URLSearchParams
}

function decodeEntities (text: string): string {
  return text.replace(/&(amp|lt|gt|quot|#39|#x27);/g, (_, entity: string) =>
    ({ amp: '&', lt: '<', gt: '>', quot: '"', '#39': "'", '#x27': "'" })[entity] ?? '')
}

function attributes (tag: string): Map<string, string> {
  const found = new Map<string, string>()
  for (const [, name = '', value = ''] of tag.matchAll(/([\w:.-]+)\s*=\s*"([^"]*)"/g)) {
    found.set(name.toLowerCase(), decodeEntities(value))
  }
  return found
}

/** The page's forms: action (absolute) and the named inputs with their values. */
function parseForms (html: string, pageUrl: string): HtmlForm[] {
  return [...html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)].map(([, formTag = '', inner = '']) => {
    const form = attributes(formTag)
    const fields = new URLSearchParams()
    for (const [, inputTag = ''] of inner.matchAll(/<input\b([^>]*)>/gi)) {
      const input = attributes(inputTag)
      const name = input.get('name')
      if (name) fields.append(name, input.get('value') ?? '')
    }
    return { id: form.get('id'), action: new URL(form.get('action') ?? pageUrl, pageUrl).href, fields }
  })
}

/**
 * From the authorization URL through the provider's login page (and its consent page, should one
 * appear) to the first redirect that leaves the provider: the client's redirect_uri. Nothing is
 * requested there.
 */
export async function driveProviderLogin (
  authorizationUrl: string,
  username: string,
  password = 'any-password',
  providerCookies = ''
): Promise<ProviderLogin> {
  const providerOrigin = new URL(authorizationUrl).origin
  const jar = new CookieJar(providerCookies)
  let answer = await send(authorizationUrl, jar)
  let loggedIn = false
  for (let step = 0; step < MAX_STEPS; step++) {
    if (isRedirect(answer.status) && answer.location) {
      if (new URL(answer.location).origin !== providerOrigin) {
        return { callbackUrl: answer.location, providerCookies: jar.header() }
      }
      answer = await send(answer.location, jar)
      continue
    }
    if (answer.status !== 200) break
    const forms = parseForms(answer.body, answer.url)
    const login = forms.find((form) => form.fields.has('login') && form.fields.has('password'))
    const consent = forms.find((form) => form.fields.get('prompt') === 'consent')
    if (login && !loggedIn) {
      // The login page again would mean the provider refused the first one: stop rather than loop.
      loggedIn = true
      login.fields.set('login', username)
      login.fields.set('password', password)
      answer = await send(login.action, jar, login.fields)
    } else if (consent) {
      answer = await send(consent.action, jar, consent.fields)
    } else {
      break
    }
  }
  throw unexpected(`login as ${username} at the provider`, answer)
}

/**
 * A browser's SSO login: GET /auth/login on the app, the provider's pages, then (unless
 * stopBeforeCallback) the app's /auth/callback with the app's cookie. With the providerCookies of
 * an earlier login the provider skips its login page (single sign-on).
 */
export async function loginThroughProvider (
  appUrl: string,
  options: {
    username: string
    password?: string
    returnTo?: string
    appCookie?: string
    stopBeforeCallback?: boolean
    providerCookies?: string
  }
): Promise<SsoLogin> {
  const appJar = new CookieJar(options.appCookie)
  const loginUrl = new URL(`${appUrl}/auth/login`)
  if (options.returnTo !== undefined) loginUrl.searchParams.set('returnTo', options.returnTo)
  const start = await send(loginUrl.href, appJar)
  if (!isRedirect(start.status) || !start.location) throw unexpected('the app\'s /auth/login', start)

  const { callbackUrl, providerCookies } = await driveProviderLogin(start.location, options.username, options.password, options.providerCookies)
  const callback = new URL(callbackUrl)
  if (`${callback.origin}${callback.pathname}` !== `${appUrl}/auth/callback`) {
    throw new Error(`the provider redirected to ${callbackUrl}, not to ${appUrl}/auth/callback`)
  }
  if (options.stopBeforeCallback) {
    return { appCookie: appJar.header(), callbackUrl, location: '', callbackStatus: 0, providerCookies }
  }

  const landed = await send(callbackUrl, appJar)
  return {
    appCookie: appJar.header(),
    callbackUrl,
    // As the app sent it (a returnTo path is relative), not resolved.
    location: landed.rawLocation ?? '',
    callbackStatus: landed.status,
    providerCookies
  }
}

/**
 * RP-initiated logout in the provider's pages: GET the end-session URL (from the app's
 * POST /auth/logout), confirm "Yes, sign me out" (logout=yes), and return where the provider then
 * redirects (the post_logout_redirect_uri, or the provider's own success page without one).
 */
export async function logoutAtProvider (endSessionUrl: string, providerCookies: string): Promise<string> {
  const jar = new CookieJar(providerCookies)
  let answer = await send(endSessionUrl, jar)
  for (let step = 0; step < MAX_STEPS && isRedirect(answer.status) && answer.location; step++) {
    answer = await send(answer.location, jar)
  }
  // With a provider session: the confirmation page, whose form holds only xsrf (the buttons sit
  // outside it). Without one: a self-submitting form that already says logout=yes.
  const form = answer.status === 200 ? parseForms(answer.body, answer.url).find((candidate) => candidate.fields.has('xsrf')) : undefined
  if (!form) throw unexpected('the provider\'s logout page', answer)
  form.fields.set('logout', 'yes')
  const confirmed = await send(form.action, jar, form.fields)
  if (!isRedirect(confirmed.status) || !confirmed.location) throw unexpected('the provider\'s logout confirmation', confirmed)
  return confirmed.location
}
