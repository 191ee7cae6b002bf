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
  element.hidden = false
}

function clearMessages () {
  page.error.hidden = true
  page.notice.hidden = true
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
      return
    }
    show(page.error, error.message)
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

function sessionItem (entry) {
  const item = document.createElement('li')
  item.dataset.current = String(entry.current)
  const description = document.createElement('span')
  // textContent, never HTML: the user agent is whatever the other client sent.
  description.textContent = [
    entry.current ? 'This browser' : (entry.userAgent || 'Unknown browser'),
    entry.ip ?? 'unknown address',
    `logged in ${formatTime(entry.createdAt)}`,
    `last seen ${formatTime(entry.lastSeenAt)}`
  ].join(' · ')
  const end = document.createElement('button')
  end.type = 'button'
  end.textContent = entry.current ? 'End (logs out here)' : 'End'
  end.addEventListener('click', () => run(async () => {
    await api('DELETE', `/session/all/${encodeURIComponent(entry.id)}`)
    await refresh()
  }))
  item.append(description, end)
  return item
}

function formatTime (iso) {
  return new Date(iso).toLocaleString()
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
  })
})

page.endOthers.addEventListener('click', () => run(async () => {
  const { revoked } = await api('DELETE', '/session/all')
  await refresh()
  show(page.notice, revoked === 1 ? 'Ended 1 other session.' : `Ended ${revoked} other sessions.`)
}))

page.logout.addEventListener('click', () => run(async () => {
  // The provider's end-session page, then back here.
  if (currentUser?.iss !== undefined) return page.ssoLogout.submit()
  await api('POST', '/session/logout')
  showLogin()
  show(page.notice, 'Logged out.')
}))

run(refresh)
