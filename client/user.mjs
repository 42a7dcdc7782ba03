// Whose recording a journal holds, so that one person's page never resumes (and never gets refused
// for) another's on a shared browser profile. A key only: read, never verified, and never used to
// decide anything the server decides. docs/recorder.md ("Shared browsers").

/** The `sub` of a JWT, unverified; null when `token` is not a JWT with a string `sub`. */
export function jwtSubject(token) {
  try {
    const payload = String(token).split('.')[1]
    if (!payload) return null
    const b64 = payload.replace(/-/g, '+').replace(/_/g, '/')
    const text = new TextDecoder().decode(
      Uint8Array.from(atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4)), (c) => c.charCodeAt(0)),
    )
    const sub = JSON.parse(text)?.sub
    return typeof sub === 'string' && sub !== '' ? sub : null
  } catch {
    return null
  }
}

/** The value of the cookie `name` in this document, or null. */
function cookie(name) {
  let all = ''
  try {
    all = globalThis.document?.cookie ?? ''
  } catch {}
  for (const pair of all.split(';')) {
    const at = pair.indexOf('=')
    if (at > 0 && pair.slice(0, at).trim() === name) return pair.slice(at + 1).trim()
  }
  return null
}

/**
 * The signed-in user as the route will see them: the `sub` of the Clerk session token in the
 * `Authorization: Bearer` header the app passes (`headers`: an object, a Headers, or pairs), else
 * of Clerk's `__session` cookie. Null when neither holds one.
 */
export function signedInUser(headers) {
  try {
    const auth = new Headers(headers ?? {}).get('authorization')
    const bearer = auth && /^Bearer\s+(\S+)\s*$/i.exec(auth)
    const sub = bearer && jwtSubject(bearer[1])
    if (sub) return sub
  } catch {}
  const session = cookie('__session')
  return session ? jwtSubject(session) : null
}

/** How long a `headers` function may take when asked only for the user (it may fetch a token). */
const HEADERS_WAIT_MS = 1000

/** `headers()` for the user's sake only: what it throws, or a wait past HEADERS_WAIT_MS, is no headers. */
async function headersForUser(headers) {
  if (typeof headers !== 'function') return headers
  let timer
  try {
    return await Promise.race([
      Promise.resolve().then(headers),
      new Promise((resolve) => (timer = setTimeout(() => resolve(undefined), HEADERS_WAIT_MS))),
    ])
  } catch {
    return undefined
  } finally {
    clearTimeout(timer)
  }
}

/**
 * The user a recorder or a resume acts for: the `userId` option when given (a string; `null`
 * means "no user": only journals without one), else derived from the credentials. Never rejects:
 * a `headers` function that fails (offline, say) leaves the cookie to say.
 */
export async function whoFor(userId, headers) {
  if (userId !== undefined) return userId === null ? null : String(userId)
  return signedInUser(await headersForUser(headers))
}

/** Whether `meta`'s journal is this user's to see and resume: its own, or one recorded before journals carried a user. */
export const belongsTo = (meta, user) => meta?.userId == null || meta.userId === user
