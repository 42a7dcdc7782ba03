// A multipart upload to Vercel Blob whose whole state is JSON the caller persists, so it survives
// a reload; parts are sent as they fill, in any order (the recorder), or a whole file a few at a
// time (`uploadSessionAudio`), both through `sendParts`. Requests go through the one Blob client
// (client/blob/client.mjs): the same grants, retries, offline waits and stall detection as a PUT.
import { SessionAudioUploadError } from '../errors.mjs'
import { blobClient, DEFAULT_PART_SIZE, mpuPath, uploadHeaders } from './client.mjs'

export { DEFAULT_PART_SIZE }
import { bodySize } from './transport.mjs'

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/
/** Vercel Blob refuses multipart parts under 5 MiB; smaller ones only on a local store (tests). */
export function checkPartSize(partSizeBytes, blobApiUrl) {
  let local = false
  try {
    local = LOOPBACK.test(new URL(blobApiUrl).hostname)
  } catch {}
  if (!Number.isInteger(partSizeBytes) || partSizeBytes < 64 * 1024)
    throw new RangeError('partSizeBytes must be a whole number of bytes, at least 64 KiB')
  if (!local && partSizeBytes < 5 * 1024 * 1024)
    throw new RangeError('partSizeBytes must be at least 5 MiB: Vercel Blob refuses smaller multipart parts')
}

const clone = (v) => JSON.parse(JSON.stringify(v))

const invalidPart = (message) => new SessionAudioUploadError(400, 'invalid_part', message)

/** The state to go on from: `initial` (a saved state), checked against this upload, or a new one. */
function savedState(pathname, partSize, initial) {
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
  return state
}

/** Part number → size of every part uploaded or on its way. */
function knownSizes(state, inFlight) {
  const sizes = new Map(Object.entries(state.sizes).map(([n, size]) => [Number(n), size]))
  for (const [n, f] of inFlight) sizes.set(n, f.size)
  return sizes
}

/** The number of the part shorter than partSize (the last), if one was sent. */
function shortPart(state, inFlight) {
  for (const [n, size] of knownSizes(state, inFlight)) if (size !== state.partSize) return n
  return null
}

/** Refuses (`invalid_part`) part `n` of `size` bytes where it cannot be part of this upload. */
function checkPartFits(state, inFlight, n, size) {
  const { partSize } = state
  if (!Number.isSafeInteger(n) || n < 1 || n > 10_000) throw invalidPart(`Part numbers run from 1 to 10000, not ${n}.`)
  if (size < 1 || size > partSize)
    throw invalidPart(
      `Part ${n} is ${size} bytes: every part is 1..${partSize} bytes, and all but the last exactly ${partSize}.`,
    )
  const short = shortPart(state, inFlight)
  if (size < partSize && short !== null && short !== n)
    throw invalidPart(`Part ${n} is ${size} bytes, but part ${short} is already the shorter last part.`)
  if (size < partSize) {
    const later = [...knownSizes(state, inFlight).keys()].find((m) => m > n)
    if (later) throw invalidPart(`Part ${n} is ${size} bytes, shorter than ${partSize}, but part ${later} follows it.`)
  }
  if (short !== null && n > short)
    throw invalidPart(`Part ${n} follows part ${short}, which was the shorter last part.`)
}

/** Refuses (`invalid_part`) completing with parts 1..totalParts unless exactly those were uploaded. */
function checkCompletable(state, totalParts) {
  const { partSize } = state
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
}

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
  const state = savedState(pathname, partSize, initial)
  const client = blobClient({ ...options, multipart: true })
  const inFlight = new Map() // part number → { promise, sent }
  let creating = null

  const changed = () => onStateChange?.(clone(state))
  const uploadedBytes = () =>
    Object.keys(state.parts).reduce((a, n) => a + (state.sizes[n] ?? 0), 0) +
    [...inFlight.values()].reduce((a, f) => a + f.sent, 0)
  const progress = () => onProgress?.({ uploadedBytes: uploadedBytes() })
  const ids = () => ({ 'x-mpu-upload-id': state.uploadId, 'x-mpu-key': encodeURIComponent(state.key) })

  const checkPart = (n, size) => checkPartFits(state, inFlight, n, size)

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
    checkCompletable(state, totalParts)
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

/**
 * Send parts `numbers` of `mpu` in that order, `concurrency` at a time; `bodyOf(n)` gives a part's
 * bytes (a Blob, maybe read from a journal). Parts already stored are skipped; `onSent(n, bytes)`
 * follows each part sent. The first failure stops the rest and rejects.
 */
export async function sendParts(mpu, numbers, bodyOf, { concurrency = 1, onSent } = {}) {
  const queue = [...numbers]
  let failed = false
  const worker = async () => {
    while (!failed && queue.length) {
      const n = queue.shift()
      if (mpu.state.parts?.[n]) continue
      try {
        const body = await bodyOf(n)
        await mpu.uploadPart(n, body)
        onSent?.(n, body.size)
      } catch (err) {
        failed = true
        throw err
      }
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, queue.length)) }, worker))
}
