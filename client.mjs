// session-audio/client: upload a listening session's recording from the browser, of any length.
// Plain JS, no native code. The bytes go straight to Vercel Blob (multipart for large files) with
// what the audio route grants: a short-lived client token where the deployment has a read-write
// token, or a presigned URL where it reaches Blob with OIDC alone, as new Vercel projects do
// (client/route.mjs, client/blob/). Then the route is told the upload finished, verifies what
// landed and attaches it.
import { SessionAudioUploadError } from './client/errors.mjs'
import { putWhole } from './client/blob/client.mjs'
import { createMultipartUpload, DEFAULT_PART_SIZE, sendParts } from './client/blob/multipart.mjs'
import { finaliseRecording } from './client/finalise/finaliser.mjs'
import { completeOnRoute, defaultRouteUrl, deliverOnce, recordingPathname } from './client/route.mjs'

export { createWebmFinaliser, finaliseWebm, WebmFinaliseError } from './client/finalise/webm.mjs'
export { createMp4Finaliser, finaliseMp4, Mp4FinaliseError } from './client/finalise/mp4.mjs'

export { SessionAudioUploadError }
export { createSessionRecorder } from './client/recorder/recorder.mjs'
export { JournalError } from './client/recorder/journal.mjs'
export { discardSessionUpload, pendingSessionUploads, resumeSessionUploads } from './client/recorder/resume.mjs'

/** Parts of 8 MiB are what `upload()` sends; below two of them a single PUT is as good. */
const MULTIPART_FROM_BYTES = 16 * 1024 * 1024

/**
 * Store `blob` with what the route grants: one PUT, or parts of DEFAULT_PART_SIZE, a few at a
 * time. Both retry, wait while offline and re-mint the grant as client/blob/client.mjs does.
 */
async function storeWithGrant(blob, { multipart, ...upload }) {
  if (!multipart) return putWhole({ ...upload, body: blob })
  const mpu = createMultipartUpload(upload)
  const total = Math.max(1, Math.ceil(blob.size / DEFAULT_PART_SIZE))
  const numbers = Array.from({ length: total }, (_, i) => i + 1)
  const bodyOf = (n) => blob.slice((n - 1) * DEFAULT_PART_SIZE, n * DEFAULT_PART_SIZE)
  await sendParts(mpu, numbers, bodyOf, { concurrency: 4 })
  return mpu.complete(total)
}

/**
 * Upload `blob` (a MediaRecorder result or a picked file) as the audio of `sessionId`.
 * Resolves with the route's answer (`{ sessionId, status: 'transcribing', audioUrl, … }`); rejects
 * with a `SessionAudioUploadError` carrying the route's code (and `final`) when anything is refused.
 * The completion follows the recorder's rule (client/route.mjs): retried through outages, and
 * sent once more from `blob` when the route cannot use what was stored (`upload_expired`,
 * `upload_not_found`).
 */
export async function uploadSessionAudio(sessionId, blob, options = {}) {
  // MediaRecorder's WebM has no Duration and no Cues, its MP4 no duration and no index: finalise
  // them first (client/finalise/; a file they cannot follow comes back unchanged).
  blob = await finaliseRecording(blob, options.contentType || blob.type)
  const {
    durationMs,
    contentType = blob.type,
    onProgress,
    signal,
    headers = {},
    name = 'recording',
    routeUrl = defaultRouteUrl(sessionId),
    multipart = blob.size >= MULTIPART_FROM_BYTES,
    blobApiUrl,
    retry,
  } = options
  const clientPayload = JSON.stringify({ durationMs, contentType })
  const pathname = recordingPathname(sessionId, name, contentType)
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
