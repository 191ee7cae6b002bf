// The page's script: plain browser JavaScript, no build step, no inline code (the page's
// Content-Security-Policy allows scripts from this origin only). It uses the JSON API with the
// session cookie, which is HttpOnly: this script never sees it, the browser sends it.
// Every failure is shown in the alert; none is swallowed.

const page = {
  error: document.getElementById('error'),
  notice: document.getElementById('notice'),
  login: document.getElementById('login'),
  account: document.getElementById('account'),
  user: document.getElementById('user'),
  sessions: document.getElementById('sessions'),
  sessionsHeading: document.getElementById('sessions-heading'),
  endOthers: document.getElementById('end-others'),
  logout: document.getElementById('logout'),
  sso: document.getElementById('sso'),
  ssoLogout: document.getElementById('sso-logout')
}

// Set by the server on the body element: which ways to log in it offers.
const offers = document.body.dataset
// The logged-in user: a single sign-on user (with `iss`) logs out at the provider too.
let currentUser = null

class ApiError extends Error {
  constructor (message, status) {
    super(message)
    this.status = status
  }
}

/** Calls the API; resolves to the JSON body (null for 204), rejects with a message for a person. */
async function api (method, path, body) {
  const init = { method, credentials: 'same-origin', headers: {} }
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json'
    init.body = JSON.stringify(body)
  }
  let response
  try {
    response = await fetch(path, init)
  } catch {
    throw new ApiError('The server cannot be reached. Check your connection and try again.', 0)
  }
  if (response.status === 204) return null
  const data = await response.json().catch(() => null)
  if (response.ok) return data
  throw new ApiError(describeFailure(response, data), response.status)
}

function describeFailure (response, data) {
  if (response.status === 401 && data?.error === 'invalid credentials') return 'Wrong username or password.'
  const message = data?.message ?? `The server answered ${response.status} ${response.statusText}`.trim()
  // 429 (too many failed logins) and 503 (store unavailable) say how long to wait.
  const retryAfter = response.headers.get('retry-after')
  return retryAfter ? `${message} (retry in ${retryAfter} s)` : message
}

function show (element, text) {
  element.textContent = text
}

function clearMessages () {
  page.error.textContent = ''
  page.notice.textContent = ''
}

/** Says something in the status region and moves focus there: what the person just did is gone from the page. */
function announce (text) {
  show(page.notice, text)
  page.notice.focus()
}

/** Runs what a person asked for and shows its failure. */
async function run (action) {
  clearMessages()
  try {
    await action()
  } catch (error) {
    if (error instanceof ApiError && error.status === 401 && !page.account.hidden) {
      // Ended elsewhere (another device, a timeout): back to the form.
      showLogin()
      show(page.error, 'Your session has ended. Log in again.')
      page.error.focus()
      return
    }
    show(page.error, error.message)
    // The button that was pressed may have gone with a list redrawn meanwhile: focus then goes to the message.
    if (document.activeElement === null || document.activeElement === document.body) page.error.focus()
  }
}

function showLogin () {
  currentUser = null
  page.account.hidden = true
  page.sessions.replaceChildren()
  page.login.hidden = offers.passwordLogin !== 'on'
  page.sso.hidden = offers.sso !== 'on'
}

function showAccount (user, sessions) {
  currentUser = user
  page.user.textContent = user.name
  page.sessions.replaceChildren(...sessions.map(sessionItem))
  page.login.hidden = true
  page.sso.hidden = true
  page.account.hidden = false
}

async function refresh () {
  const session = await api('GET', '/session')
  if (!session.authenticated) return showLogin()
  showAccount(session.user, await api('GET', '/session/all'))
}

function element (name, className, ...children) {
  const made = document.createElement(name)
  if (className) made.className = className
  made.append(...children)
  return made
}

/** A <time> written by `format`, with the full date and time on hover. */
function timeElement (iso, format) {
  const time = document.createElement('time')
  time.dateTime = iso
  time.textContent = format(iso)
  time.title = formatTime(iso)
  return time
}

function sessionItem (entry) {
  const item = element('li', 'session')
  item.dataset.current = String(entry.current)
  // textContent, never HTML: the device comes from whatever the other client sent.
  const device = element('span', 'device-name', entry.device)
  // The header as sent, on hover.
  if (entry.userAgent) device.title = entry.userAgent
  const heading = element('p', 'device', device)
  if (entry.current) heading.append(' ', element('span', 'badge', 'This browser'))
  const address = entry.ip ?? 'unknown address'
  const details = element('p', 'details',
    element('span', 'line', ...(entry.current ? ['Active now'] : ['Last active ', timeElement(entry.lastSeenAt, ago)]), ` · ${address}`),
    element('span', 'line', 'Logged in ', timeElement(entry.createdAt, formatTime))
  )

  const end = element('button', 'danger', entry.current ? 'End (logs out here)' : 'End')
  end.type = 'button'
  // The visible text first (what speech control users say), then which session it ends.
  end.setAttribute('aria-label', entry.current
    ? `End (logs out here): this browser, ${entry.device}`
    : `End session: ${entry.device}${entry.ip ? `, ${entry.ip}` : ''}`)
  end.addEventListener('click', () => {
    const question = entry.current
      ? `End this session (${entry.device})? You will be logged out here.`
      : `End the session on ${entry.device}? It will be logged out.`
    if (!window.confirm(question)) return
    run(async () => {
      await api('DELETE', `/session/all/${encodeURIComponent(entry.id)}`)
      if (entry.current) {
        showLogin()
        return announce('Session ended: you are logged out.')
      }
      await refresh()
      announce(`Ended the session on ${entry.device}.`)
    })
  })
  item.append(element('div', 'session-info', heading, details), end)
  return item
}

const timeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' })

function formatTime (iso) {
  return timeFormat.format(new Date(iso))
}

const relativeTime = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' })
const UNITS = [['day', 86400], ['hour', 3600], ['minute', 60]]

/** "just now", "5 minutes ago", "yesterday". */
function ago (iso) {
  const seconds = (Date.parse(iso) - Date.now()) / 1000
  const [unit, size] = UNITS.find(([, size]) => Math.abs(seconds) >= size) ?? []
  return unit ? relativeTime.format(Math.round(seconds / size), unit) : 'just now'
}

page.login.addEventListener('submit', (event) => {
  event.preventDefault()
  const fields = new FormData(page.login)
  run(async () => {
    try {
      await api('POST', '/session/login', { username: fields.get('username'), password: fields.get('password') })
    } finally {
      page.login.elements.password.value = ''
    }
    await refresh()
    // The form is gone: on to what the page is about.
    page.sessionsHeading.focus()
  })
})

page.endOthers.addEventListener('click', () => {
  if (!window.confirm('End all your other sessions? Every other browser and device will be logged out; this one stays logged in.')) return
  run(async () => {
    const { revoked } = await api('DELETE', '/session/all')
    await refresh()
    announce(revoked === 1 ? 'Ended 1 other session.' : `Ended ${revoked} other sessions.`)
  })
})

page.logout.addEventListener('click', () => run(async () => {
  // The provider's end-session page, then back here.
  if (currentUser?.iss !== undefined) return page.ssoLogout.submit()
  await api('POST', '/session/logout')
  showLogin()
  announce('Logged out.')
}))

run(refresh)
