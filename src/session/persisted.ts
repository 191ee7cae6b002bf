// What a store knows about a session object it read or wrote in this request: the expiry (in
// seconds) it holds for it, and the content it last wrote. That tells a save whether the row may be
// inserted (a session the store has never seen) or only updated (so a late request cannot
// resurrect a session that logout deleted meanwhile), tells touch how far the row lags, and lets
// a save that changes nothing be skipped (express-session saves a session regenerated at login a
// second time, its cookie's expiry a few milliseconds later).
//
// Kept beside the session, never on it: a route may spread, assign, clone or JSON-round-trip a
// session (`const data = { ...req.session }` before `regenerate`), and a copy must not pass for a
// stored session. Each entry names its session id: one data object saved under two ids (a
// caller's plain object, a copy across regenerate) is new to the store under the second.
interface Bookkeeping {
  sid: string
  storedExpires: number
  writtenContent?: string
  /** The row's text as the store read it (or last wrote it), for a write that must not overwrite a newer one. */
  loadedText?: string
}

const bookkeeping = new WeakMap<object, Bookkeeping>()

/** Records what the store holds for this session; `content` when the store just wrote it. */
export function markPersisted (session: object, sid: string, expiresSeconds: number, content?: string): void {
  const entry = bookkeeping.get(session)
  if (entry?.sid === sid) {
    entry.storedExpires = expiresSeconds
    if (content !== undefined) entry.writtenContent = content
  } else {
    bookkeeping.set(session, { sid, storedExpires: expiresSeconds, writtenContent: content })
  }
}

/** Records the row's text as the store read or wrote it for this session (after markPersisted); undefined when not text. */
export function markLoaded (session: object, sid: string, text: string | undefined): void {
  const entry = bookkeeping.get(session)
  if (entry?.sid === sid) entry.loadedText = text
}

/** The row's text as read in this request, if the store read it as text. */
export function loadedText (session: object, sid: string): string | undefined {
  const entry = bookkeeping.get(session)
  return entry?.sid === sid ? entry.loadedText : undefined
}

/** Moves what is known of the data a store read onto the Session object express-session built from it. */
export function carryPersisted (from: object, to: object): void {
  const entry = bookkeeping.get(from)
  if (entry) bookkeeping.set(to, { ...entry })
}

/** The stored expiry in seconds, or undefined for a session the store has not seen under this id. */
export function persistedExpiry (session: object, sid: string): number | undefined {
  const entry = bookkeeping.get(session)
  return entry?.sid === sid ? entry.storedExpires : undefined
}

/** The content this process last wrote for the session under this id in this request, if it wrote it. */
export function writtenContent (session: object, sid: string): string | undefined {
  const entry = bookkeeping.get(session)
  return entry?.sid === sid ? entry.writtenContent : undefined
}

/** What express-session itself compares to decide a session was modified: everything but the cookie. */
export function sessionContent (session: object): string {
  // The same text as express-session's replacer that drops the top-level `cookie`, without calling
  // a function for every key of the data (the bridge compares it twice per request).
  const { cookie, ...content } = session as { cookie?: unknown }
  return JSON.stringify(content)
}
