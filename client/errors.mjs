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
