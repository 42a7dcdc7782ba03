// session-audio/client: upload a listening session's recording from the browser, of any length.
// Plain JS, no native code. The bytes go straight to Vercel Blob (multipart for large files) with
// what the audio route grants: a short-lived client token (`upload()` from `@vercel/blob/client`)
// where the deployment has a read-write token, or a presigned URL (`uploadPresigned()`) where it
// reaches Blob with OIDC alone, as new Vercel projects do. Then the route is told the upload
// finished, verifies what landed and attaches it.
import * as blobClient from '@vercel/blob/client'
import { finaliseWebm } from './client/webm.mjs'

export { createWebmFinaliser, finaliseWebm, WebmFinaliseError } from './client/webm.mjs'

/** A refusal, with the route's error code (`session_not_found`, `content_mismatch`, …). */
export class SessionAudioUploadError extends Error {
  constructor(status, code, message) {
    super(message)
    this.name = 'SessionAudioUploadError'
    this.status = status
    this.code = code
  }
}

const EXTENSIONS = {
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

/** Parts of 8 MiB are what `upload()` sends; below two of them a single PUT is as good. */
const MULTIPART_FROM_BYTES = 16 * 1024 * 1024

async function refusal(res) {
  let body = null
  try {
    body = await res.json()
  } catch {}
  const error = body && body.error
  return new SessionAudioUploadError(
    res.status,
    (error && error.code) || `http_${res.status}`,
    (error && error.message) || `The audio route answered ${res.status}.`,
  )
}

/** How each route grants uploads, once learnt: 'client-token' or 'presigned'. */
const grants = new Map()

/** The route's refusal of `event`, asked again: the SDK turns any refusal into one generic error. */
async function askRoute({ routeUrl, headers, signal, pathname, clientPayload, multipart }, type) {
  const res = await fetch(routeUrl, {
    method: 'POST',
    headers: { ...headers, 'content-type': 'application/json' },
    body: JSON.stringify({ type, payload: { pathname, clientPayload, multipart } }),
    signal,
  })
  return res.ok ? null : refusal(res)
}

/**
 * Store `blob` with what the route grants. A client token first (`upload()`), unless this route
 * is known to grant presigned URLs: a deployment with OIDC alone refuses client tokens
 * (`client_tokens_need_read_write_token`), and then `uploadPresigned()` is used, for this upload
 * and the next. Any other refusal of the grant is rejected with the route's own code.
 */
async function uploadWithGrant(pathname, blob, options, ask) {
  if (grants.get(ask.routeUrl) !== 'presigned') {
    try {
      const stored = await blobClient.upload(pathname, blob, options)
      grants.set(ask.routeUrl, 'client-token')
      return stored
    } catch (err) {
      if (!/client token/i.test(String(err && err.message))) throw err
      const why = await askRoute(ask, 'blob.generate-client-token')
      if (!why) throw err
      if (why.code !== 'client_tokens_need_read_write_token') throw why
      grants.set(ask.routeUrl, 'presigned')
    }
  }
  if (typeof blobClient.uploadPresigned !== 'function')
    throw new SessionAudioUploadError(
      500,
      'blob_sdk_too_old',
      'This deployment reaches Vercel Blob with OIDC, which needs presigned uploads: install @vercel/blob 2.8 or later in the app.',
    )
  try {
    return await blobClient.uploadPresigned(pathname, blob, options)
  } catch (err) {
    if (!/presigned/i.test(String(err && err.message))) throw err
    const why = await askRoute(ask, 'blob.generate-presigned-url')
    throw why ?? err
  }
}

/**
 * Upload `blob` (a MediaRecorder result or a picked file) as the audio of `sessionId`.
 * Resolves with the route's answer (`{ sessionId, status: 'transcribing', audioUrl, … }`); rejects
 * with a `SessionAudioUploadError` carrying the route's code when anything is refused.
 */
export async function uploadSessionAudio(sessionId, blob, options = {}) {
  // MediaRecorder's WebM has no Duration and no Cues: players cannot seek it. Finalise it first
  // (client/webm.mjs; anything else, or a WebM it cannot follow, comes back unchanged).
  if (/^audio\/webm\b/i.test(String(options.contentType || blob.type))) blob = await finaliseWebm(blob)
  const {
    durationMs,
    contentType = blob.type,
    onProgress,
    signal,
    headers = {},
    name = 'recording',
    routeUrl = `/api/listening-sessions/${encodeURIComponent(sessionId)}/audio`,
    multipart = blob.size >= MULTIPART_FROM_BYTES,
  } = options
  const essence = String(contentType || '')
    .split(';')[0]
    .trim()
    .toLowerCase()
  const ext = EXTENSIONS[essence]
  if (!ext)
    throw new SessionAudioUploadError(
      415,
      'unsupported_media_type',
      `Audio type ${contentType || '(none)'} is not accepted.`,
    )
  const clientPayload = JSON.stringify({ durationMs, contentType })
  const pathname = `listening-sessions/${sessionId}/${name}.${ext}`
  // The SDK throttles its events, so its last one may come late or not at all: report 100 % once
  // the upload resolved, and nothing after it.
  let finished = false
  let last = null
  const progress = (p) => {
    if (finished || !onProgress) return
    last = p
    onProgress(p)
  }
  const sdkOptions = {
    access: 'private',
    handleUploadUrl: routeUrl,
    clientPayload,
    contentType,
    headers,
    multipart,
    abortSignal: signal,
    onUploadProgress: onProgress
      ? ({ loaded, total, percentage }) => progress({ loaded, total, percentage })
      : undefined,
  }
  const ask = { routeUrl, headers, signal, pathname, clientPayload, multipart }
  let stored
  try {
    stored = await uploadWithGrant(pathname, blob, sdkOptions, ask)
    if (!last || last.percentage !== 100) progress({ loaded: blob.size, total: blob.size, percentage: 100 })
    finished = true
  } catch (err) {
    finished = true
    // Cancelled: reject as fetch does, with the signal's reason (an AbortError).
    if (signal && signal.aborted) throw signal.reason ?? err
    if (err instanceof SessionAudioUploadError) throw err
    throw new SessionAudioUploadError(502, 'storage_failed', String((err && err.message) || err))
  }
  const res = await fetch(routeUrl, {
    method: 'POST',
    headers: { ...headers, 'content-type': 'application/json' },
    body: JSON.stringify({ type: 'session-audio.complete-upload', payload: { url: stored.url, durationMs } }),
    signal,
  })
  if (!res.ok) throw await refusal(res)
  return res.json()
}
