import { createRequire } from 'node:module'

// express-session's own copies of its cookie parser and signer, so a test signs and reads cookies
// exactly as the server verifies them (the cookie-signature hoisted for express is another version).
const requireFromExpressSession = createRequire(createRequire(import.meta.url).resolve('express-session'))
const signature = requireFromExpressSession('cookie-signature') as {
  sign: (value: string, secret: string) => string
  unsign: (signed: string, secret: string) => string | false
}
const cookie = requireFromExpressSession('cookie') as { parse: (header: string) => Record<string, string | undefined> }

/** `name=value` of a session cookie for `id`, signed with `secret` as express-session signs it. */
export function signedCookie (id: string, secret: string, name = 'sid'): string {
  return `${name}=${encodeURIComponent(`s:${signature.sign(id, secret)}`)}`
}

/** The session id in a `sid=s%3A<id>.<signature>` cookie, without checking the signature. */
export function sessionIdOf (cookiePair: string | undefined): string | undefined {
  const value = decodeURIComponent(cookiePair?.split('=')[1] ?? '')
  return value.startsWith('s:') ? value.slice(2, value.lastIndexOf('.')) : undefined
}

/**
 * The id express-session would look up in the store for this Cookie header (its own parser, its
 * own signature check, the first of duplicate names), or undefined when it would not read the store.
 */
export function verifiedSessionId (header: string, secret: string, name = 'sid'): string | undefined {
  const raw = cookie.parse(header)[name]
  if (!raw?.startsWith('s:')) return undefined
  return signature.unsign(raw.slice(2), secret) || undefined
}
