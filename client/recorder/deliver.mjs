// Delivering a journaled recording: send what it still lacks to Blob (the parts not stored yet, in
// ascending order, one at a time, or one PUT when it fits a part) and have the route attach it,
// with the route's completion rule (client/route.mjs). Shared by the recorder's `stop()` and
// `resumeSessionUploads()`.
import { completeOnRoute, deliverOnce, isFinalRefusal as isFinal } from '../route.mjs'
import { putWhole } from '../blob/client.mjs'
import { createMultipartUpload, sendParts } from '../blob/multipart.mjs'
import { finalisable } from '../finalise/finaliser.mjs'
import { JournalError } from './journal.mjs'
import { layout, rebuild } from './stream.mjs'

/** What every Blob upload of a recording names: its route, grant declaration and Blob options. */
const uploadOptions = (meta, headers, signal) => ({
  routeUrl: meta.routeUrl,
  headers,
  pathname: meta.pathname,
  contentType: meta.contentType,
  // Recording: the length is not known until it ends (the route checks what lands).
  clientPayload: JSON.stringify({ contentType: meta.contentType, recording: true }),
  apiUrl: meta.apiUrl,
  ...(meta.retry ? { retry: meta.retry } : {}),
  signal,
})

/** The recording's multipart upload, from `state` (a saved one) or new; every change goes to the journal. */
export function startMultipart({ journal, sessionId, meta, headers, signal, state, onError }) {
  return createMultipartUpload({
    ...uploadOptions(meta, headers, signal),
    partSize: meta.partSize,
    state: state ?? undefined,
    // Saved after every change, so a later page can continue the upload. A journal that failed
    // (a full quota) was reported when it did: the upload goes on without the bookkeeping.
    onStateChange: (next) => {
      journal.setMeta(sessionId, { upload: next }).catch((err) => {
        if (!(err instanceof JournalError)) onError?.(err)
      })
    },
  })
}

/**
 * The multipart state still valid for `stream`. When the stream was cut (the journal ended inside
 * an element), any part reaching past the new body is sent again. Part 1 is kept unless the cut
 * falls inside it: its header region is the provisional one, which depends only on the
 * recording's first bytes, so the rebuilt stream has the same.
 */
export function validParts(state, stream, partSize, cut) {
  if (!state || !cut) return state ?? null
  const bodyEnd = stream.header.length + stream.inputBytes - stream.dataStart
  const keep = (n) => n * partSize <= bodyEnd
  const parts = Object.fromEntries(Object.entries(state.parts ?? {}).filter(([n]) => keep(Number(n))))
  const sizes = Object.fromEntries(Object.entries(state.sizes ?? {}).filter(([n]) => keep(Number(n))))
  return { ...state, parts, sizes, completed: null }
}

/**
 * The header region the upload stream carries: the provisional one when a part holding header
 * bytes is already stored (part 1 goes up while recording, and a stored part is not sent again),
 * else the final one (a recording that fits one PUT, or one whose first part never went up): then
 * the stored file is final as it lands and the route attaches it as it is. Both have the same
 * length, so no other byte moves.
 */
export function headerFor(stream, state, partSize) {
  const headerParts = Math.max(1, Math.ceil(stream.header.length / partSize))
  for (let n = 1; n <= headerParts; n++) if (state?.parts?.[n]) return stream.provisional
  return stream.header
}

/**
 * Send what a journaled recording still lacks and have the route attach it; the journal ends when
 * the route confirms (201/200). Shared by `stop()` and `resumeSessionUploads()`.
 * - A completion already stored (`storedUrl`) is told to the route first.
 * - The stream is `stream` (stop's own), else rebuilt from the journal, cut at its last whole
 *   element; stored parts still valid for it are reused (`uploadPart` skips them).
 * - When the route cannot use the stored blob (`upload_expired`, `upload_not_found`), the
 *   recording is sent once more from the journal as a new upload (client/route.mjs).
 * - A final refusal (`isFinalRefusal`) is kept in the journal (`status: 'refused'`) and not retried
 *   by itself; a final 409 (the session moved on) ends the journal. Anything else leaves the journal
 *   pending for the next `resumeSessionUploads()`.
 */
export async function deliver({ journal, sessionId, meta, bytes, stream, headers, signal, onUploaded, onError }) {
  let cut = false
  /** The upload stream, built (or rebuilt from the journal) once per delivery. */
  const prepare = async () => {
    if (!stream || (!stream.finalised && finalisable(meta.contentType))) {
      stream = await rebuild(journal, sessionId, bytes, meta.contentType)
      cut = stream.inputBytes < bytes
    }
    return stream
  }
  const upload = async ({ again }) => {
    if (again) {
      // What was stored cannot be attached: a new upload (a new grant, a new blob) from the journal.
      meta = { ...meta, storedUrl: null, upload: null }
      await journal.setMeta(sessionId, { status: 'stopped', storedUrl: null, upload: null }).catch(() => {})
    }
    await prepare()
    const P = meta.partSize
    let stored
    const state = validParts(meta.upload, stream, P, cut)
    const { total, slice } = layout({ ...stream, header: headerFor(stream, state, P) })
    if (!state?.uploadId && total <= P) {
      stored = await putWhole({
        ...uploadOptions(meta, headers, signal),
        body: await slice(journal, sessionId, 0, total),
      })
      onUploaded?.(total)
    } else {
      const mpu = startMultipart({ journal, sessionId, meta, headers, signal, state, onError })
      const count = Math.ceil(total / P)
      // In ascending order, one at a time, read from the journal; the stored ones are skipped, so
      // after Stop only what did not go up while recording is sent.
      const order = Array.from({ length: count }, (_, i) => i + 1)
      const bodyOf = (n) => slice(journal, sessionId, (n - 1) * P, Math.min(n * P, total))
      await sendParts(mpu, order, bodyOf, { onSent: (_, bytes) => onUploaded?.(bytes) })
      stored = await mpu.complete(count)
    }
    await journal.setMeta(sessionId, { status: 'completing', storedUrl: stored.url }).catch(() => {})
    // The length the finaliser wrote (the route measures and compares it); none otherwise.
    return { url: stored.url, durationMs: stream.durationMs }
  }
  try {
    const result = await deliverOnce({
      stored: meta.storedUrl ? { url: meta.storedUrl } : null,
      upload,
      complete: ({ url, durationMs }) => completeOnRoute({ routeUrl: meta.routeUrl, headers, url, durationMs, signal }),
      onResend: (err) => onError?.(err),
    })
    await journal.remove(sessionId).catch(() => {})
    return result
  } catch (err) {
    if (isFinal(err) && err.status === 409) await journal.remove(sessionId).catch(() => {})
    else if (isFinal(err))
      await journal
        .setMeta(sessionId, {
          status: 'refused',
          refusal: { status: err.status, code: err.code, message: err.message, final: true },
        })
        .catch(() => {})
    throw err
  }
}
