// The one error session-audio/client rejects with. Its own module so that every part of the client
// (client.mjs, client/parts.mjs, the recorder) can throw it without importing each other.

/**
 * A refusal, with the route's error code (`session_not_found`, `content_mismatch`, …), or one of the
 * client's own (`storage_failed`, `multipart_upload_not_found`, `invalid_part`, …). `status` is the
 * HTTP status of the refusal (502 when Blob refused or could not be reached).
 */
export class SessionAudioUploadError extends Error {
  constructor(status, code, message) {
    super(message)
    this.name = 'SessionAudioUploadError'
    this.status = status
    this.code = code
  }
}

/**
 * The route's refusal as an error with its status and code, from the JSON body already read
 * (`{ error: { code, message } }`, or anything else: then `http_<status>` and a generic message).
 */
export function refusalFromBody(status, body) {
  const error = body && body.error
  return new SessionAudioUploadError(
    status,
    (error && error.code) || `http_${status}`,
    (error && error.message) || `The audio route answered ${status}.`,
  )
}

/** The route's refusal as an error with its status and code, reading the response's JSON body. */
export async function routeRefusal(res) {
  let body = null
  try {
    body = await res.json()
  } catch {}
  return refusalFromBody(res.status, body)
}
