// The one error session-audio/client rejects with. Its own module so that every part of the client
// (client.mjs, client/route.mjs, client/blob/, the recorder) can throw it without importing each other.

/**
 * A refusal, with the route's error code (`session_not_found`, `content_mismatch`, …), or one of the
 * client's own (`storage_failed`, `multipart_upload_not_found`, `invalid_part`, …). `status` is the
 * HTTP status of the refusal (502 when Blob refused or could not be reached). `final` is the
 * route's word on it when the route gave one (`true`: refused for good because of the recording or
 * because the session moved on; `false`: trying again later may succeed), else undefined.
 * `retryAfterMs`: the route's `Retry-After`, when it sent one.
 */
export class SessionAudioUploadError extends Error {
  constructor(status, code, message, { final, retryAfterMs } = {}) {
    super(message)
    this.name = 'SessionAudioUploadError'
    this.status = status
    this.code = code
    if (typeof final === 'boolean') this.final = final
    if (retryAfterMs > 0) this.retryAfterMs = retryAfterMs
  }
}

/** `Retry-After` (seconds or an HTTP date) in ms, or 0. */
export function retryAfterMs(value) {
  if (!value) return 0
  const seconds = Number(value)
  const ms = Number.isFinite(seconds) ? seconds * 1000 : Date.parse(value) - Date.now()
  return Number.isFinite(ms) && ms > 0 ? ms : 0
}

/**
 * The route's refusal as an error with its status and code, from the JSON body already read
 * (`{ error: { code, message, final } }`, or anything else: then `http_<status>` and a generic
 * message). `retryAfter`: the response's `Retry-After` header, if any.
 */
export function refusalFromBody(status, body, retryAfter = null) {
  const error = body && body.error
  return new SessionAudioUploadError(
    status,
    (error && error.code) || `http_${status}`,
    (error && error.message) || `The audio route answered ${status}.`,
    { final: error ? error.final : undefined, retryAfterMs: retryAfterMs(retryAfter) },
  )
}

/** The route's refusal as an error with its status and code, reading the response's JSON body. */
export async function routeRefusal(res) {
  let body = null
  try {
    body = await res.json()
  } catch {}
  return refusalFromBody(res.status, body, res.headers?.get?.('retry-after'))
}
