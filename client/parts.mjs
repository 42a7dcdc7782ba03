// Uploads straight to Vercel Blob with what the audio route grants, speaking Blob's API as
// `@vercel/blob` 2.8 does (`x-api-version: 12`, the `x-mpu-*` multipart steps), with no SDK:
//   - requestGrant: a client token (deployments with a read-write token) or a presigned URL
//     (deployments on OIDC alone), learnt per route;
//   - createMultipartUpload: a multipart upload whose whole state is JSON the caller persists, so
//     it survives a reload; parts are sent as they fill, in any order;
//   - putWhole: one PUT for what fits one part.
// Every Blob request retries network errors, stalls, 408/429/5xx and Blob's retryable codes with
// exponential backoff and jitter, waits while the browser is offline (no attempt is spent then),
// and re-mints the grant before it expires. Refusals from the route are final: they reject at once
// with the route's status and code. Plain browser JS: no Node APIs, no dependencies.
import { routeRefusal, SessionAudioUploadError } from './errors.mjs'

const DEFAULT_API_URL = 'https://vercel.com/api/blob'
const API_VERSION = '12'
const MiB = 1024 * 1024
/** What `@vercel/blob` sends; Vercel Blob refuses non-final parts under 5 MiB. */
export const DEFAULT_PART_SIZE = 8 * MiB
const DEFAULT_RETRY = { attempts: 8, baseMs: 500, maxMs: 30_000 }
const DEFAULT_STALL_MS = 30_000
/** Blob's error codes worth another attempt (as `@vercel/blob` retries them). */
const RETRYABLE_CODES = new Set(['unknown_error', 'service_unavailable', 'internal_server_error'])
/** Retry-After is honoured up to this long. */
const MAX_RETRY_AFTER_MS = 5 * 60_000

/**
 * Where Blob's API is, as `@vercel/blob` finds it in a browser: `explicit`, else
 * `VERCEL_BLOB_API_URL` / `NEXT_PUBLIC_VERCEL_BLOB_API_URL` when `process.env` exists (a bundler
 * inlines the NEXT_PUBLIC one at build time), else Vercel's.
 */
export function blobApiUrl(explicit) {
  if (explicit) return String(explicit).replace(/\/+$/, '')
  let fromEnv = null
  try {
    fromEnv = process.env.VERCEL_BLOB_API_URL || process.env.NEXT_PUBLIC_VERCEL_BLOB_API_URL
  } catch {}
  return (fromEnv || DEFAULT_API_URL).replace(/\/+$/, '')
}

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
    headers: { ...(typeof headers === 'function' ? await headers() : headers), 'content-type': 'application/json' },
    body: JSON.stringify({ type, payload: { pathname, clientPayload, multipart } }),
    signal,
  })
}

const badGrant = (what) =>
  new SessionAudioUploadError(502, 'invalid_grant', `The audio route answered ${what} without a usable grant.`)

function clientTokenGrant(clientToken, apiUrl) {
  let payload
  try {
    payload = clientTokenPayload(clientToken)
  } catch {
    throw badGrant('blob.generate-client-token')
  }
  const storeId = String(clientToken).split('_')[3] ?? ''
  return {
    kind: 'client-token',
    validUntil: Number(payload.validUntil) || Date.now() + 30_000,
    receivedAt: Date.now(),
    storeId,
    headersFor: () => ({ authorization: `Bearer ${clientToken}`, 'x-vercel-blob-store-id': storeId }),
    urlFor: (path) => `${apiUrl}${path}`,
  }
}

function presignedGrant(payload, apiUrl) {
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
 * code. Resolves with `{ kind: 'client-token' | 'presigned', validUntil (epoch ms), receivedAt,
 * storeId, headersFor(action), urlFor(path) }`: `urlFor('/mpu?pathname=…')` is the full Blob API URL
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
      return clientTokenGrant(body.clientToken, api)
    }
    const why = await routeRefusal(res)
    if (why.code !== 'client_tokens_need_read_write_token') throw why
    grantKinds.set(key, 'presigned')
  }
  const res = await askRoute(ask, 'blob.generate-presigned-url')
  if (!res.ok) throw await routeRefusal(res)
  const body = await res.json().catch(() => null)
  if (!body || !body.presignedUrlPayload) throw badGrant('blob.generate-presigned-url')
  return presignedGrant(body.presignedUrlPayload, api)
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
// Requests: retries, backoff, offline waits, stalls

/** A failed Blob request: `retryable` decides whether another attempt is made. */
class BlobFailure extends Error {
  constructor({ status = 0, code, message, retryable, expired = false, retryAfterMs = 0 }) {
    super(message)
    this.status = status
    this.code = code
    this.retryable = retryable
    this.expired = expired
    this.retryAfterMs = retryAfterMs
  }
}

/** The browser's connectivity: `navigator.onLine` and the window's `online` event. */
const browserOnline = {
  isOnline: () => typeof navigator === 'undefined' || navigator.onLine !== false,
  waitOnline: () =>
    new Promise((resolve) => {
      if (typeof window === 'undefined' || typeof window.addEventListener !== 'function') return resolve()
      window.addEventListener('online', () => resolve(), { once: true })
    }),
}

const aborted = (signal) => signal.reason ?? Object.assign(new Error('The upload was aborted.'), { name: 'AbortError' })

/** `promise`, or the signal's reason as soon as it aborts. */
function untilAborted(promise, signal) {
  if (!signal) return promise
  if (signal.aborted) return Promise.reject(aborted(signal))
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(aborted(signal))
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort)
        resolve(v)
      },
      (e) => {
        signal.removeEventListener('abort', onAbort)
        reject(e)
      },
    )
  })
}

const sleep = (ms, signal) => untilAborted(new Promise((r) => setTimeout(r, ms)), signal)

/** Exponential backoff with jitter: between half and all of min(maxMs, baseMs × 2^n). */
export function backoffMs(n, { baseMs, maxMs }, random = Math.random) {
  const ceiling = Math.min(maxMs, baseMs * 2 ** n)
  return Math.round(ceiling / 2 + (random() * ceiling) / 2)
}

function retryAfterMs(value) {
  if (!value) return 0
  const seconds = Number(value)
  const ms = Number.isFinite(seconds) ? seconds * 1000 : Date.parse(value) - Date.now()
  return Number.isFinite(ms) && ms > 0 ? Math.min(ms, MAX_RETRY_AFTER_MS) : 0
}

/** How a non-2xx Blob answer is handled. */
async function blobFailure(status, text, retryAfter) {
  let error = null
  try {
    error = JSON.parse(text).error
  } catch {}
  const code = (error && error.code) || 'unknown_error'
  const message = (error && error.message) || `Vercel Blob answered ${status}.`
  const retryable = status === 408 || status === 429 || status >= 500 || RETRYABLE_CODES.has(code)
  // A client token past validUntil ("Token expired"), or a presigned URL or delegation that expired.
  const expired = status === 403 && /expired/i.test(message)
  return new BlobFailure({ status, code, message, retryable, expired, retryAfterMs: retryAfterMs(retryAfter) })
}

const bodySize = (body) => (body == null ? 0 : typeof body.size === 'number' ? body.size : body.byteLength || 0)

/**
 * One attempt with `fetch`. A stall is no answer within `stallMs` (fetch shows no upload progress),
 * so there `stallMs` must cover sending one part on the slowest link you support.
 */
async function sendWithFetch({ method, url, headers, body, signal, stallMs }) {
  const controller = new AbortController()
  let stalled = false
  const onAbort = () => controller.abort(signal.reason)
  signal?.addEventListener('abort', onAbort, { once: true })
  let timer = setTimeout(() => {
    stalled = true
    controller.abort()
  }, stallMs)
  const rearm = () => {
    clearTimeout(timer)
    timer = setTimeout(() => {
      stalled = true
      controller.abort()
    }, stallMs)
  }
  try {
    const res = await fetch(url, { method, headers, body, signal: controller.signal })
    rearm()
    const text = await res.text()
    return { status: res.status, text, retryAfter: res.headers.get('retry-after') }
  } catch (err) {
    if (signal?.aborted) throw aborted(signal)
    if (stalled) throw stallFailure(stallMs)
    throw new BlobFailure({
      code: 'network_error',
      message: `Could not reach Vercel Blob: ${err?.message ?? err}`,
      retryable: true,
    })
  } finally {
    clearTimeout(timer)
    signal?.removeEventListener('abort', onAbort)
  }
}

const stallFailure = (stallMs) =>
  new BlobFailure({ code: 'stalled', message: `Vercel Blob showed no progress for ${stallMs} ms.`, retryable: true })

/**
 * One attempt with XMLHttpRequest (browsers): it reports upload progress, so a stall is `stallMs`
 * with neither upload progress nor an answer, however long the part takes on a slow link.
 */
function sendWithXhr({ method, url, headers, body, signal, stallMs, onSent }) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest()
    let stalled = false
    let timer = null
    const arm = () => {
      clearTimeout(timer)
      timer = setTimeout(() => {
        stalled = true
        xhr.abort()
      }, stallMs)
    }
    const onAbort = () => xhr.abort()
    const done = () => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
    }
    xhr.open(method, url)
    for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v)
    xhr.upload.onprogress = (e) => {
      arm()
      onSent?.(e.loaded)
    }
    xhr.onprogress = arm
    xhr.onload = () => {
      done()
      // Only headers CORS exposes are readable (asking for another logs an error): look among them.
      const retryAfter = /^retry-after:\s*(.*)$/im.exec(xhr.getAllResponseHeaders())
      resolve({ status: xhr.status, text: xhr.responseText, retryAfter: retryAfter ? retryAfter[1].trim() : null })
    }
    xhr.onerror = () => {
      done()
      reject(new BlobFailure({ code: 'network_error', message: 'Could not reach Vercel Blob.', retryable: true }))
    }
    xhr.onabort = () => {
      done()
      if (signal?.aborted) reject(aborted(signal))
      else
        reject(
          stalled ? stallFailure(stallMs) : new BlobFailure({ code: 'aborted', message: 'aborted', retryable: true }),
        )
    }
    signal?.addEventListener('abort', onAbort, { once: true })
    arm()
    xhr.send(body ?? null)
  })
}

const defaultTransport = () => (typeof XMLHttpRequest === 'function' ? sendWithXhr : sendWithFetch)

/** The final error for a Blob failure that is not retried (any more). */
function finalError(err, action) {
  if (err instanceof SessionAudioUploadError) return err
  if (!(err instanceof BlobFailure)) return err
  if (err.status === 404 && (action === 'upload' || action === 'complete')) {
    const e = new SessionAudioUploadError(
      404,
      'multipart_upload_not_found',
      'Vercel Blob no longer has this multipart upload (it completed or expired): start a new one.',
    )
    e.blobCode = err.code
    return e
  }
  const e = new SessionAudioUploadError(502, 'storage_failed', `Vercel Blob: ${err.message}`)
  e.blobStatus = err.status
  e.blobCode = err.code
  e.retryable = err.retryable // true when the attempts ran out: worth trying again later
  return e
}

const randomHex = () => Math.random().toString(16).slice(2)

/**
 * What every upload shares: the grant (minted on first use, re-minted before it expires or when
 * Blob says it expired) and `call()`, one Blob request with retries. putWhole and
 * createMultipartUpload hand it their whole options: it takes the connection ones (route, headers,
 * Blob URL, retry, stall, online, transport, onGrant) and leaves the rest.
 */
function blobClient({
  routeUrl,
  headers = {},
  pathname,
  clientPayload = null,
  multipart,
  apiUrl,
  signal,
  retry = {},
  stallMs = DEFAULT_STALL_MS,
  online = browserOnline,
  transport = defaultTransport(),
  onGrant,
}) {
  const policy = { ...DEFAULT_RETRY, ...retry }
  let grant = null
  let minting = null

  function currentGrant() {
    if (grant && !grantNeedsRenewal(grant)) return grant
    minting ??= requestGrant({ routeUrl, headers, pathname, clientPayload, multipart, signal, apiUrl })
      .then((g) => {
        grant = g
        onGrant?.(g)
        return g
      })
      .finally(() => {
        minting = null
      })
    return minting
  }

  /** Wait while offline; resolves at once when online. */
  async function whileOffline() {
    while (!online.isOnline()) await untilAborted(online.waitOnline(signal), signal)
  }

  /**
   * One Blob request: `path` under the API, `action` (for errors), `headers`, `body`. Resolves with
   * the JSON answer. `onSent(bytes)` reports upload progress where the transport knows it.
   */
  async function call({ method = 'POST', path, action, headers: extra = {}, body, onSent }) {
    let requestId = null
    let attempt = 0
    for (;;) {
      if (signal?.aborted) throw aborted(signal)
      await whileOffline()
      let failure
      try {
        const g = await currentGrant()
        requestId ??= `${g.storeId}:${Date.now()}:${randomHex()}`
        const res = await transport({
          method,
          url: g.urlFor(path),
          headers: {
            'x-api-version': API_VERSION,
            'x-api-blob-request-id': requestId,
            'x-api-blob-request-attempt': String(attempt),
            ...g.headersFor(action),
            ...extra,
          },
          body,
          signal,
          stallMs,
          onSent,
        })
        if (res.status >= 200 && res.status < 300) {
          try {
            return JSON.parse(res.text)
          } catch {
            throw new BlobFailure({
              status: res.status,
              code: 'unknown_error',
              message: 'Vercel Blob answered no JSON.',
              retryable: true,
            })
          }
        }
        failure = await blobFailure(res.status, res.text, res.retryAfter)
      } catch (err) {
        if (signal?.aborted) throw aborted(signal)
        failure = err
      }
      // The route's own refusals are final; its 5xx/408/429 (and network errors reaching it) are not.
      const retryable =
        failure instanceof BlobFailure
          ? failure.retryable || failure.expired
          : failure instanceof SessionAudioUploadError
            ? failure.status === 408 || failure.status === 429 || failure.status >= 500
            : failure instanceof TypeError // fetch's network error, asking the route
      if (!retryable) throw finalError(failure, action)
      if (failure.expired) grant = null
      // Offline: the attempt did not count, and the wait is for `online`, not a backoff.
      if (!online.isOnline()) continue
      attempt++
      if (attempt >= policy.attempts) {
        if (failure instanceof BlobFailure) failure.retryable = true
        throw finalError(failure, action)
      }
      if (!failure.expired) await sleep(Math.max(backoffMs(attempt - 1, policy), failure.retryAfterMs || 0), signal)
    }
  }

  /** Declare something new (the final duration): the next request asks for a grant carrying it. */
  function redeclare(payload) {
    clientPayload = payload
    grant = null
  }

  return { call, redeclare }
}

const uploadHeaders = (contentType) => ({
  'x-vercel-blob-access': 'private',
  ...(contentType ? { 'x-content-type': contentType } : {}),
})

const mpuPath = (pathname) => `/mpu?${new URLSearchParams({ pathname })}`

// ---------------------------------------------------------------------------------------------
// Multipart

const clone = (v) => JSON.parse(JSON.stringify(v))

const invalidPart = (message) => new SessionAudioUploadError(400, 'invalid_part', message)

/**
 * A multipart upload of `pathname` that survives reloads: everything needed to go on is in
 * `.state` (JSON), handed to `onStateChange(state)` after every change for the caller to persist,
 * and given back as `state` to continue in a new page.
 *
 * Parts are numbered from 1 and may be sent in any order and concurrently. Every part but the last
 * must be exactly `partSize` bytes (R2, behind Vercel Blob, refuses unequal parts; Vercel's minimum
 * is 5 MiB, the SDK's and the default 8 MiB); a part of another size is refused here before it is
 * sent (`invalid_part`): a shorter part is the last, and no later part may follow it.
 *
 * state: { pathname, partSize, uploadId, key, parts: { [n]: etag }, sizes: { [n]: bytes },
 *          completed: { url, pathname, … } | null }
 */
export function createMultipartUpload(options) {
  const { pathname, contentType, partSize = DEFAULT_PART_SIZE, state: initial, onStateChange, onProgress } = options
  if (!Number.isSafeInteger(partSize) || partSize < 1)
    throw invalidPart('partSize must be a positive whole number of bytes.')
  const state = {
    pathname,
    partSize,
    uploadId: null,
    key: null,
    parts: {},
    sizes: {},
    completed: null,
    ...(initial ? clone(initial) : {}),
  }
  state.parts ??= {}
  state.sizes ??= {}
  if (state.pathname !== pathname) throw invalidPart(`The saved state is for ${state.pathname}, not ${pathname}.`)
  if (state.partSize !== partSize)
    throw invalidPart(
      `The saved state uses parts of ${state.partSize} bytes, not ${partSize}: resume with the same partSize.`,
    )
  const client = blobClient({ ...options, multipart: true })
  const inFlight = new Map() // part number → { promise, sent }
  let creating = null

  const changed = () => onStateChange?.(clone(state))
  const uploadedBytes = () =>
    Object.keys(state.parts).reduce((a, n) => a + (state.sizes[n] ?? 0), 0) +
    [...inFlight.values()].reduce((a, f) => a + f.sent, 0)
  const progress = () => onProgress?.({ uploadedBytes: uploadedBytes() })
  const ids = () => ({ 'x-mpu-upload-id': state.uploadId, 'x-mpu-key': encodeURIComponent(state.key) })

  /** Part number → size of every part uploaded or on its way. */
  const knownSizes = () => {
    const sizes = new Map(Object.entries(state.sizes).map(([n, size]) => [Number(n), size]))
    for (const [n, f] of inFlight) sizes.set(n, f.size)
    return sizes
  }
  /** The number of the part shorter than partSize (the last), if one was sent. */
  const shortPart = () => {
    for (const [n, size] of knownSizes()) if (size !== partSize) return n
    return null
  }

  function checkPart(n, size) {
    if (!Number.isSafeInteger(n) || n < 1 || n > 10_000)
      throw invalidPart(`Part numbers run from 1 to 10000, not ${n}.`)
    if (size < 1 || size > partSize)
      throw invalidPart(
        `Part ${n} is ${size} bytes: every part is 1..${partSize} bytes, and all but the last exactly ${partSize}.`,
      )
    const short = shortPart()
    if (size < partSize && short !== null && short !== n)
      throw invalidPart(`Part ${n} is ${size} bytes, but part ${short} is already the shorter last part.`)
    if (size < partSize) {
      const later = [...knownSizes().keys()].find((m) => m > n)
      if (later)
        throw invalidPart(`Part ${n} is ${size} bytes, shorter than ${partSize}, but part ${later} follows it.`)
    }
    if (short !== null && n > short)
      throw invalidPart(`Part ${n} follows part ${short}, which was the shorter last part.`)
  }

  async function ensureCreated() {
    if (state.uploadId) return
    creating ??= client
      .call({
        path: mpuPath(pathname),
        action: 'create',
        headers: { ...uploadHeaders(contentType), 'x-mpu-action': 'create' },
      })
      .then((answer) => {
        if (!answer || typeof answer.uploadId !== 'string' || typeof answer.key !== 'string')
          throw new SessionAudioUploadError(
            502,
            'storage_failed',
            'Vercel Blob answered the multipart create without an upload id.',
          )
        state.uploadId = answer.uploadId
        state.key = answer.key
        changed()
      })
      .finally(() => {
        creating = null
      })
    return creating
  }

  async function uploadPart(n, body) {
    if (state.parts[n]) return state.parts[n]
    if (inFlight.has(n)) return inFlight.get(n).promise
    checkPart(n, bodySize(body))
    const flight = { sent: 0, size: bodySize(body), promise: null }
    flight.promise = (async () => {
      await ensureCreated()
      const answer = await client.call({
        path: mpuPath(pathname),
        action: 'upload',
        headers: { ...uploadHeaders(contentType), 'x-mpu-action': 'upload', ...ids(), 'x-mpu-part-number': String(n) },
        body,
        onSent: (bytes) => {
          flight.sent = bytes
          progress()
        },
      })
      if (!answer || typeof answer.etag !== 'string')
        throw new SessionAudioUploadError(502, 'storage_failed', `Vercel Blob answered part ${n} without an ETag.`)
      state.parts[n] = answer.etag
      state.sizes[n] = bodySize(body)
      return answer.etag
    })()
    inFlight.set(n, flight)
    try {
      const etag = await flight.promise
      inFlight.delete(n)
      changed()
      progress()
      return etag
    } catch (err) {
      inFlight.delete(n)
      throw err
    }
  }

  /**
   * Complete with parts 1..totalParts. `clientPayload` (optional) replaces the declaration for this
   * last call: a fresh grant carrying it is asked for first (the recording's real duration, which
   * the route checks again when Blob's completion webhook arrives).
   */
  async function complete(totalParts, { clientPayload: final } = {}) {
    if (state.completed) return state.completed
    if (!Number.isSafeInteger(totalParts) || totalParts < 1) throw invalidPart('complete() needs the number of parts.')
    const missing = []
    for (let n = 1; n <= totalParts; n++) if (!state.parts[n]) missing.push(n)
    if (missing.length) throw invalidPart(`Parts ${missing.join(', ')} of ${totalParts} were not uploaded.`)
    const extra = Object.keys(state.parts)
      .map(Number)
      .filter((n) => n > totalParts)
    if (extra.length) throw invalidPart(`Parts ${extra.join(', ')} were uploaded beyond the ${totalParts} to complete.`)
    for (let n = 1; n < totalParts; n++)
      if (state.sizes[n] !== undefined && state.sizes[n] !== partSize)
        throw invalidPart(`Part ${n} is ${state.sizes[n]} bytes; every part but the last must be ${partSize}.`)
    await ensureCreated()
    if (final !== undefined) client.redeclare(final)
    const parts = []
    for (let n = 1; n <= totalParts; n++) parts.push({ partNumber: n, etag: state.parts[n] })
    const stored = await client.call({
      path: mpuPath(pathname),
      action: 'complete',
      headers: {
        ...uploadHeaders(contentType),
        'x-mpu-action': 'complete',
        ...ids(),
        'content-type': 'application/json',
      },
      body: JSON.stringify(parts),
    })
    state.completed = stored
    changed()
    return stored
  }

  return {
    ensureCreated,
    uploadPart,
    complete,
    get state() {
      return clone(state)
    },
  }
}

// ---------------------------------------------------------------------------------------------
// Single PUT

/**
 * One PUT of `body` to `pathname`, for what fits one part: the same grants, retries, offline waits
 * and stall detection. Resolves with Blob's answer (`{ url, downloadUrl, pathname, contentType, … }`).
 */
export async function putWhole(options) {
  const { pathname, contentType, body, onProgress } = options
  const client = blobClient({ ...options, multipart: false })
  const stored = await client.call({
    method: 'PUT',
    path: `/?${new URLSearchParams({ pathname })}`,
    action: 'put',
    headers: uploadHeaders(contentType),
    body,
    onSent: (bytes) => onProgress?.({ uploadedBytes: bytes }),
  })
  onProgress?.({ uploadedBytes: bodySize(body) })
  return stored
}
