// session-audio/client: upload a listening session's recording from the browser, of any length.
// Plain JS, no native code. The bytes go straight to Vercel Blob (multipart for large files) with
// what the audio route grants: a short-lived client token where the deployment has a read-write
// token, or a presigned URL where it reaches Blob with OIDC alone, as new Vercel projects do
// (client/parts.mjs). Then the route is told the upload finished, verifies what landed and
// attaches it.
import { completeOnRoute, deliverOnce } from './client/complete.mjs'
import { SessionAudioUploadError } from './client/errors.mjs'
import { createMultipartUpload, DEFAULT_PART_SIZE, putWhole } from './client/parts.mjs'
import { finaliseMp4 } from './client/mp4.mjs'
import { finaliseWebm } from './client/webm.mjs'

export { createWebmFinaliser, finaliseWebm, WebmFinaliseError } from './client/webm.mjs'
export { createMp4Finaliser, finaliseMp4, Mp4FinaliseError } from './client/mp4.mjs'

export { SessionAudioUploadError }
export {
  createSessionRecorder,
  discardSessionUpload,
  JournalError,
  pendingSessionUploads,
  resumeSessionUploads,
} from './client/recorder.mjs'

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

/**
 * Store `blob` with what the route grants: one PUT, or parts of DEFAULT_PART_SIZE, a few at a
 * time. Both retry, wait while offline and re-mint the grant as client/parts.mjs does.
 */
async function storeWithGrant(blob, { multipart, ...upload }) {
  if (!multipart) return putWhole({ ...upload, body: blob })
  const mpu = createMultipartUpload(upload)
  const total = Math.max(1, Math.ceil(blob.size / DEFAULT_PART_SIZE))
  let next = 1
  let failed = false
  const worker = async () => {
    while (!failed && next <= total) {
      const n = next++
      try {
        await mpu.uploadPart(n, blob.slice((n - 1) * DEFAULT_PART_SIZE, n * DEFAULT_PART_SIZE))
      } catch (err) {
        failed = true
        throw err
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(4, total) }, worker))
  return mpu.complete(total)
}

/**
 * Upload `blob` (a MediaRecorder result or a picked file) as the audio of `sessionId`.
 * Resolves with the route's answer (`{ sessionId, status: 'transcribing', audioUrl, … }`); rejects
 * with a `SessionAudioUploadError` carrying the route's code (and `final`) when anything is refused.
 * The completion follows the recorder's rule (client/complete.mjs): retried through outages, and
 * sent once more from `blob` when the route cannot use what was stored (`upload_expired`,
 * `upload_not_found`).
 */
export async function uploadSessionAudio(sessionId, blob, options = {}) {
  // MediaRecorder's WebM has no Duration and no Cues, its MP4 no duration and no index: finalise
  // them first (client/webm.mjs, client/mp4.mjs; a file they cannot follow comes back unchanged).
  if (/^audio\/webm\b/i.test(String(options.contentType || blob.type))) blob = await finaliseWebm(blob)
  if (/^audio\/mp4\b/i.test(String(options.contentType || blob.type))) blob = await finaliseMp4(blob)
  const {
    durationMs,
    contentType = blob.type,
    onProgress,
    signal,
    headers = {},
    name = 'recording',
    routeUrl = `/api/listening-sessions/${encodeURIComponent(sessionId)}/audio`,
    multipart = blob.size >= MULTIPART_FROM_BYTES,
    blobApiUrl,
    retry,
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
  const total = blob.size
  const upload = {
    routeUrl,
    headers,
    pathname,
    contentType,
    clientPayload,
    multipart,
    signal,
    apiUrl: blobApiUrl,
    ...(retry ? { retry } : {}),
    // 100 % is reported once the upload resolved, below.
    onProgress: ({ uploadedBytes: loaded }) => {
      if (loaded < total) progress({ loaded, total, percentage: Number(((loaded / total) * 100).toFixed(2)) })
    },
  }
  const store = async () => {
    let stored
    try {
      stored = await storeWithGrant(blob, upload)
      if (!last || last.percentage !== 100) progress({ loaded: blob.size, total: blob.size, percentage: 100 })
      finished = true
    } catch (err) {
      finished = true
      // Cancelled: reject as fetch does, with the signal's reason (an AbortError).
      if (signal && signal.aborted) throw signal.reason ?? err
      if (err instanceof SessionAudioUploadError) throw err
      throw new SessionAudioUploadError(502, 'storage_failed', String((err && err.message) || err))
    }
    return { url: stored.url, durationMs }
  }
  return deliverOnce({
    // Sent again (a new grant, a new blob): progress is reported once, for the first upload.
    upload: store,
    complete: ({ url }) => completeOnRoute({ routeUrl, headers, url, durationMs, signal }),
  })
}
