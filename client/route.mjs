// Everything `session-audio/client` knows about the audio route, in one place, for
// `uploadSessionAudio` (client.mjs) and the recorder (client/recorder/) alike:
//   - where the route is and where a session's recording is stored (one extension per type);
//   - the grants it gives for uploading straight to Blob: a client token (deployments with a
//     read-write token) or a presigned URL (deployments on OIDC alone), and the access the
//     deployment stores with (`public` / `private`, the route's `SESSION_AUDIO_BLOB_ACCESS`);
//   - the completion (`session-audio.complete-upload`) with its one retry rule, and the one
//     re-send when the route cannot use what was stored (`upload_expired`, `upload_not_found`).
// docs/client-uploads.md and docs/recorder.md ("Failures") say the same in prose.
import { refusalFromBody, retryAfterMs, routeRefusal, SessionAudioUploadError } from './errors.mjs'
import { blobApiUrl } from './blob/transport.mjs'

// ---------------------------------------------------------------------------------------------
// The route and the stored pathname

/** The audio route of `sessionId`, unless the app names another. */
export const defaultRouteUrl = (sessionId) => `/api/listening-sessions/${encodeURIComponent(sessionId)}/audio`

/** The extension a stored recording gets for each type the route accepts (its essence, lower case). */
export const EXTENSIONS = {
  'audio/webm': 'webm',
  'audio/ogg': 'ogg',
  'audio/mpeg': 'mp3',
  'audio/mp3': 'mp3',
  'audio/mp4': 'm4a',
  'audio/x-m4a': 'm4a',
  'audio/m4a': 'm4a',
  'audio/aac': 'aac',
  'audio/wav': 'wav',
  'audio/wave': 'wav',
  'audio/x-wav': 'wav',
  'audio/vnd.wave': 'wav',
  'audio/flac': 'flac',
  'audio/x-flac': 'flac',
}

/** A content type's essence: `audio/webm;codecs=opus` → `audio/webm`. */
export const essence = (type) =>
  String(type || '')
    .split(';')[0]
    .trim()
    .toLowerCase()

/**
 * Where `sessionId`'s recording named `name` is stored: `listening-sessions/<id>/<name>.<ext>` (the
 * route checks the same shape). A type the route does not accept is refused here, before any
 * request: 415 `unsupported_media_type`.
 */
export function recordingPathname(sessionId, name, contentType) {
  const ext = EXTENSIONS[essence(contentType)]
  if (!ext)
    throw new SessionAudioUploadError(
      415,
      'unsupported_media_type',
      `Audio type ${contentType || '(none)'} is not accepted.`,
    )
  return `listening-sessions/${sessionId}/${name}.${ext}`
}

/** Headers for the route now (`headers` may be a function: a fresh `Authorization` per request). */
export const headersNow = async (headers) => (typeof headers === 'function' ? await headers() : headers)

// ---------------------------------------------------------------------------------------------
// Grants

/**
 * How each deployment grants uploads, once learnt: 'client-token' or 'presigned'. Keyed by the
 * route's origin: every session's route of one deployment grants the same way, so an OIDC
 * deployment pays for the refused client-token request once per page, not once per session.
 */
const grantKinds = new Map()
const deployment = (routeUrl) => {
  try {
    return new URL(routeUrl, globalThis.location?.href ?? 'http://localhost/').origin
  } catch {
    return String(routeUrl)
  }
}

/** Base64 (standard or url-safe, padded or not) to text, in browsers and Node alike. */
function base64Text(b64) {
  let s = String(b64).replace(/-/g, '+').replace(/_/g, '/')
  while (s.length % 4) s += '='
  const bin = atob(s)
  const bytes = new Uint8Array(bin.length)
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i)
  return new TextDecoder().decode(bytes)
}

/** A client token's payload, as `getPayloadFromClientToken` reads it (`validUntil`, `pathname`, …). */
export function clientTokenPayload(clientToken) {
  const encoded = String(clientToken).split('_')[4] ?? ''
  const inner = base64Text(encoded)
  return JSON.parse(base64Text(inner.slice(inner.indexOf('.') + 1)))
}

/** A delegation token's scope (`storeId`, `validUntil`, …): its first dot-separated segment. */
function delegationScope(delegationToken) {
  const token = String(delegationToken)
  const dot = token.indexOf('.')
  return JSON.parse(base64Text(dot < 0 ? token : token.slice(0, dot)))
}

async function askRoute({ routeUrl, headers, signal, pathname, clientPayload, multipart }, type) {
  return fetch(routeUrl, {
    method: 'POST',
    // A function gives fresh headers per request (a short-lived `Authorization` token).
    headers: { ...(await headersNow(headers)), 'content-type': 'application/json' },
    body: JSON.stringify({ type, payload: { pathname, clientPayload, multipart } }),
    signal,
  })
}

const badGrant = (what) =>
  new SessionAudioUploadError(502, 'invalid_grant', `The audio route answered ${what} without a usable grant.`)

/** The access the route's deployment stores uploads with; an older route says none: private. */
const accessOf = (body) => (body?.access === 'public' ? 'public' : 'private')

function clientTokenGrant(clientToken, apiUrl, access) {
  let payload
  try {
    payload = clientTokenPayload(clientToken)
  } catch {
    throw badGrant('blob.generate-client-token')
  }
  const storeId = String(clientToken).split('_')[3] ?? ''
  return {
    kind: 'client-token',
    access,
    validUntil: Number(payload.validUntil) || Date.now() + 30_000,
    receivedAt: Date.now(),
    storeId,
    headersFor: () => ({ authorization: `Bearer ${clientToken}`, 'x-vercel-blob-store-id': storeId }),
    urlFor: (path) => `${apiUrl}${path}`,
  }
}

function presignedGrant(payload, apiUrl, access) {
  const { delegationToken, signature, params = {} } = payload || {}
  let scope
  try {
    scope = delegationScope(delegationToken)
  } catch {
    throw badGrant('blob.generate-presigned-url')
  }
  if (!delegationToken || !signature) throw badGrant('blob.generate-presigned-url')
  const storeId = String(scope.storeId ?? '').replace(/^store_/, '')
  const untils = [Number(scope.validUntil), Number(params['vercel-blob-valid-until'])].filter(Number.isFinite)
  return {
    kind: 'presigned',
    access,
    validUntil: untils.length ? Math.min(...untils) : Date.now() + 30_000,
    receivedAt: Date.now(),
    storeId,
    headersFor: () => ({ 'x-vercel-blob-store-id': storeId }),
    urlFor: (path) => {
      const url = new URL(`${apiUrl}${path}`)
      for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v)
      url.searchParams.set('vercel-blob-delegation', delegationToken)
      url.searchParams.set('vercel-blob-signature', signature)
      return url.toString()
    },
  }
}

/**
 * A grant from the route to upload `pathname`: a client token first, unless this route is known
 * to grant presigned URLs; a deployment on OIDC alone refuses client tokens
 * (`client_tokens_need_read_write_token`), and then a presigned URL is asked for, for this upload
 * and every later one to the same route. Any other refusal rejects with the route's status and
 * code. Resolves with `{ kind: 'client-token' | 'presigned', access: 'public' | 'private' (what the
 * route's deployment stores with; `private` from a route too old to say), validUntil (epoch ms),
 * receivedAt, storeId, headersFor(action), urlFor(path) }`: `urlFor('/mpu?pathname=…')` is the full Blob API URL
 * (with the presigned query), `headersFor()` the credential headers.
 */
export async function requestGrant({
  routeUrl,
  headers = {},
  pathname,
  clientPayload = null,
  multipart = false,
  signal,
  apiUrl,
}) {
  const api = blobApiUrl(apiUrl)
  const ask = { routeUrl, headers, signal, pathname, clientPayload, multipart }
  const key = deployment(routeUrl)
  if (grantKinds.get(key) !== 'presigned') {
    const res = await askRoute(ask, 'blob.generate-client-token')
    if (res.ok) {
      const body = await res.json().catch(() => null)
      if (!body || typeof body.clientToken !== 'string') throw badGrant('blob.generate-client-token')
      grantKinds.set(key, 'client-token')
      return clientTokenGrant(body.clientToken, api, accessOf(body))
    }
    const why = await routeRefusal(res)
    if (why.code !== 'client_tokens_need_read_write_token') throw why
    grantKinds.set(key, 'presigned')
  }
  const res = await askRoute(ask, 'blob.generate-presigned-url')
  if (!res.ok) throw await routeRefusal(res)
  const body = await res.json().catch(() => null)
  if (!body || !body.presignedUrlPayload) throw badGrant('blob.generate-presigned-url')
  return presignedGrant(body.presignedUrlPayload, api, accessOf(body))
}

/**
 * Whether `grant` should be replaced before the next request: when less than max(1 s, min(5 min,
 * 25 % of its lifetime)) remains, so a request that starts on it still finds it valid.
 */
export function grantNeedsRenewal(grant, now = Date.now()) {
  const lifetime = Math.max(0, grant.validUntil - grant.receivedAt)
  const margin = Math.max(1000, Math.min(5 * 60_000, lifetime * 0.25))
  return grant.validUntil - now < margin
}

// ---------------------------------------------------------------------------------------------
// The completion

/** The route cannot attach the stored blob (too old, or gone): the audio has to go up again. */
const UPLOAD_AGAIN = new Set(['upload_expired', 'upload_not_found'])
/** Never refused for good, whatever an older route's status says. */
const NEVER_FINAL = new Set([...UPLOAD_AGAIN, 'session_not_found'])

/** Whether `err` asks for the audio to be uploaded again (a new grant, a new blob). */
export const uploadAgain = (err) => err instanceof SessionAudioUploadError && UPLOAD_AGAIN.has(err.code)

/**
 * A refusal that trying again will not change. The route says so itself (`final: true`: the
 * recording's bytes, type, size, duration, the user's limits, or the session moved on;
 * `final: false`: an outage, a sign-in, a session this user cannot see). A route that does not say
 * (older versions) and the client's own errors: a 4xx other than 401, 408, 429, and never
 * `upload_expired`, `upload_not_found`, `session_not_found` or `multipart_upload_not_found`.
 */
export function isFinalRefusal(err) {
  if (!(err instanceof SessionAudioUploadError)) return false
  if (typeof err.final === 'boolean') return err.final
  return (
    err.status >= 400 &&
    err.status < 500 &&
    ![401, 408, 429].includes(err.status) &&
    !NEVER_FINAL.has(err.code) &&
    err.code !== 'multipart_upload_not_found'
  )
}

const isAbort = (err) => err?.name === 'AbortError'

/** Attempts of one completion: the first and 4 more, 0.5 s, 1 s, 2 s, 4 s apart (or Retry-After, up to 30 s). */
const ATTEMPTS = 5
const MAX_WAIT_MS = 30_000

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason ?? new DOMException('aborted', 'AbortError'))
    const t = setTimeout(done, ms)
    function done() {
      signal?.removeEventListener('abort', stop)
      resolve()
    }
    function stop() {
      clearTimeout(t)
      reject(signal.reason ?? new DOMException('aborted', 'AbortError'))
    }
    signal?.addEventListener('abort', stop, { once: true })
  })
}

/**
 * Post `session-audio.complete-upload` for the stored `url` and resolve with the route's answer.
 * Retried on network errors, 5xx, 408 and 429 (waiting at least the route's `Retry-After`); any
 * other answer rejects at once with the route's status, code and `final` (`isFinalRefusal` says
 * what the caller does with it).
 */
export async function completeOnRoute({ routeUrl, headers = {}, url, durationMs, signal }) {
  const payload = durationMs === undefined ? { url } : { url, durationMs }
  for (let attempt = 0; ; attempt++) {
    const backoff = (min = 0) => sleep(Math.min(MAX_WAIT_MS, Math.max(500 * 2 ** attempt, min)), signal)
    const last = attempt >= ATTEMPTS - 1
    let res
    try {
      res = await fetch(routeUrl, {
        method: 'POST',
        headers: { ...(await headersNow(headers)), 'content-type': 'application/json' },
        body: JSON.stringify({ type: 'session-audio.complete-upload', payload }),
        signal,
      })
    } catch (err) {
      if (isAbort(err) || last) throw err
      await backoff()
      continue
    }
    let body = null
    try {
      body = await res.json()
    } catch {}
    if (res.ok) return body
    const err = refusalFromBody(res.status, body, res.headers.get('retry-after'))
    const transient = res.status >= 500 || res.status === 408 || res.status === 429
    if (!transient || last) throw err
    await backoff(retryAfterMs(res.headers.get('retry-after')))
  }
}

/**
 * One delivery: complete `stored` (what an earlier attempt stored, if anything), else `upload()`
 * and complete what it stored. When the route answers that it cannot use the stored blob
 * (`upload_expired`: older than a grant lives; `upload_not_found`: gone), `upload({ again: true })`
 * sends the audio once more (a new grant, a new blob) and that is completed: one re-send per
 * delivery, never a loop. `upload` resolves with `{ url, durationMs? }`; `complete(stored)` with
 * the route's answer.
 */
export async function deliverOnce({ stored = null, upload, complete, onResend }) {
  let resent = false
  if (stored) {
    try {
      return await complete(stored)
    } catch (err) {
      if (!uploadAgain(err)) throw err
      resent = true
      await onResend?.(err)
    }
  }
  for (;;) {
    const next = await upload({ again: resent })
    try {
      return await complete(next)
    } catch (err) {
      if (resent || !uploadAgain(err)) throw err
      resent = true
      await onResend?.(err)
    }
  }
}
