// One Blob client for every upload `session-audio/client` makes, one PUT or a multipart upload:
// Blob's API as `@vercel/blob` 2.8 speaks it (`x-api-version: 12`, the `x-mpu-*` steps), with no
// SDK. Every request retries network errors, stalls, 408/429/5xx and Blob's retryable codes with
// exponential backoff and jitter, waits while the browser is offline (no attempt is spent then),
// and re-mints the grant (client/route.mjs) before it expires. Refusals from the route are final:
// they reject at once with the route's status and code. The access every upload declares
// (`x-vercel-blob-access`) is the grant's. Plain browser JS: no Node APIs, no dependencies.
import { SessionAudioUploadError } from '../errors.mjs'
import { requestGrant, grantNeedsRenewal } from '../route.mjs'
import { aborted, BlobFailure, bodySize, browserOnline, defaultTransport, sleep, untilAborted } from './transport.mjs'

const MiB = 1024 * 1024
/** What `@vercel/blob` sends; Vercel Blob refuses non-final parts under 5 MiB. */
export const DEFAULT_PART_SIZE = 8 * MiB
const API_VERSION = '12'
const DEFAULT_RETRY = { attempts: 8, baseMs: 500, maxMs: 30_000 }
const DEFAULT_STALL_MS = 30_000
/** Blob's error codes worth another attempt (as `@vercel/blob` retries them). */
const RETRYABLE_CODES = new Set(['unknown_error', 'service_unavailable', 'internal_server_error'])
/** Retry-After is honoured up to this long. */
const MAX_RETRY_AFTER_MS = 5 * 60_000

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
export function blobClient({
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
            // The access the route's deployment stores with, as its grant says.
            'x-vercel-blob-access': g.access,
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

export const uploadHeaders = (contentType) => (contentType ? { 'x-content-type': contentType } : {})

export const mpuPath = (pathname) => `/mpu?${new URLSearchParams({ pathname })}`

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
