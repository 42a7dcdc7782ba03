// The recorder in `session-audio/client`: records with MediaRecorder, journals every chunk to
// IndexedDB before anything else happens to it, uploads Blob multipart parts while recording, and
// finishes with a file a player can seek. A reload or a crash loses at most the last timeslice:
// `resumeSessionUploads()` on the next page load finishes what was journaled. docs/recorder.md.
//
// The upload stream is what the WebM finaliser writes (client/webm.mjs): a header region of fixed
// length (`H` bytes) followed by the recording from its first Cluster (input byte `D` on), then the
// Cues. Every byte after the header region is final when written, so parts 2, 3, … go up as they
// fill; part 1 (which holds the header region) goes last, once the Duration and Cues are known.
// The journal keeps the recorder's own chunks, so all of it can be rebuilt after a crash.
import { completeOnRoute, deliverOnce, isFinalRefusal as isFinal } from './complete.mjs'
import { SessionAudioUploadError } from './errors.mjs'
import { openJournal, JournalError } from './journal.mjs'
import { createMultipartUpload, putWhole } from './parts.mjs'
import { createMp4Finaliser, repairRepeatedMoof } from './mp4.mjs'
import { createWebmFinaliser } from './webm.mjs'
import { belongsTo, whoFor } from './user.mjs'

export { JournalError }

/** What Vercel Blob's SDK cuts multipart uploads into; every non-final part is exactly this. */
export const DEFAULT_PART_BYTES = 8 * 1024 * 1024
const TYPES = ['audio/webm;codecs=opus', 'audio/webm', 'audio/mp4;codecs=mp4a.40.2', 'audio/mp4']
const EXTENSIONS = { 'audio/webm': 'webm', 'audio/mp4': 'm4a' }
/** Sessions this page is recording or finishing: resume leaves them alone. */
const active = new Set()

const essence = (type) =>
  String(type || '')
    .split(';')[0]
    .trim()
    .toLowerCase()
const defaultRoute = (sessionId) => `/api/listening-sessions/${encodeURIComponent(sessionId)}/audio`

/** The first type this browser records: WebM/Opus, else MP4/AAC (Safari). */
export function pickRecordingType(isTypeSupported = (t) => globalThis.MediaRecorder?.isTypeSupported?.(t)) {
  return TYPES.find((t) => isTypeSupported(t)) ?? null
}

/** A journal that keeps chunks in memory: the documented fallback when IndexedDB cannot be used. */
export function createMemoryJournal() {
  const recordings = new Map()
  return {
    kind: 'memory',
    async begin(sessionId, meta) {
      recordings.set(sessionId, { meta: { ...meta }, chunks: [], bytes: 0 })
    },
    async append(sessionId, seq, bytes, info = {}) {
      const r = recordings.get(sessionId)
      const blob = bytes instanceof Blob ? bytes : new Blob([bytes])
      r.chunks.push({ blob, start: r.bytes, size: blob.size })
      r.bytes += blob.size
      if (info.recordedMs !== undefined) r.recordedMs = info.recordedMs
    },
    async setMeta(sessionId, patch) {
      const r = recordings.get(sessionId)
      if (r) Object.assign(r.meta, patch)
    },
    async get(sessionId) {
      const r = recordings.get(sessionId)
      return r
        ? { sessionId, meta: r.meta, chunkCount: r.chunks.length, bytes: r.bytes, recordedMs: r.recordedMs }
        : null
    },
    async read(sessionId, start, end) {
      const r = recordings.get(sessionId)
      const parts = []
      for (const c of r.chunks) {
        if (c.start + c.size <= start || c.start >= end) continue
        parts.push(c.blob.slice(Math.max(0, start - c.start), Math.min(c.size, end - c.start)))
      }
      return new Blob(parts)
    },
    async list() {
      return [...recordings].map(([sessionId, r]) => ({
        sessionId,
        meta: r.meta,
        chunkCount: r.chunks.length,
        bytes: r.bytes,
        recordedMs: r.recordedMs,
      }))
    },
    async remove(sessionId) {
      recordings.delete(sessionId)
    },
    close() {},
  }
}

/**
 * The journal of a recording whose journal stopped taking writes: bytes before `fromByte` stay in
 * `journal` (read from there), every later chunk is kept in memory. Its bookkeeping (the upload's
 * state, the status) still goes to `journal` where it can; a failure there changes nothing.
 */
export function spillToMemory(journal, sessionId, fromByte) {
  const held = []
  let bytes = fromByte
  return {
    kind: 'memory',
    fromByte,
    async append(id, seq, chunk) {
      const blob = chunk instanceof Blob ? chunk : new Blob([chunk])
      held.push({ blob, start: bytes, size: blob.size })
      bytes += blob.size
    },
    async read(id, start, end) {
      const parts = []
      if (start < fromByte) parts.push(await journal.read(id, start, Math.min(end, fromByte)))
      for (const c of held) {
        if (c.start + c.size <= start || c.start >= end) continue
        parts.push(c.blob.slice(Math.max(0, start - c.start), Math.min(c.size, end - c.start)))
      }
      return new Blob(parts)
    },
    setMeta: (id, patch) => journal.setMeta(id, patch).catch(() => {}),
    get: (id) => journal.get(id).catch(() => null),
    list: () => journal.list(),
    remove: (id) => journal.remove(id).catch(() => {}),
    close: () => journal.close?.(),
  }
}

/**
 * Where each byte of the upload stream comes from, once the recording is over: the final header
 * region, the journal from input byte `D`, then the Cues.
 */
function layout({ header, dataStart, inputBytes, tail }) {
  const H = header.length
  const total = H + (inputBytes - dataStart) + tail.length
  /** Bytes [a, b) of the upload stream, as a Blob (journal bytes stay on disk). */
  async function slice(journal, sessionId, a, b) {
    const parts = []
    if (a < H) parts.push(header.subarray(a, Math.min(b, H)))
    const inA = Math.max(a, H) - H + dataStart
    const inB = Math.min(b, H + inputBytes - dataStart) - H + dataStart
    if (inB > inA) parts.push(await journal.read(sessionId, inA, inB))
    const tailStart = H + inputBytes - dataStart
    if (b > tailStart) parts.push(tail.subarray(Math.max(0, a - tailStart), b - tailStart))
    return new Blob(parts)
  }
  return { total, slice }
}

/** The content types a finaliser makes seekable, and the finaliser for each. */
const FINALISERS = { 'audio/webm': createWebmFinaliser, 'audio/mp4': createMp4Finaliser }

const EMPTY = new Uint8Array(0)

/**
 * The upload stream's end. `head`: `{ finaliser, provisional, dataStart }` once the finaliser wrote
 * its header region (`provisional`), else null (the stream is the recording as it is). When the
 * finaliser cannot finish, the provisional stream goes up: still playable, just not seekable; the
 * audio is never lost over its index.
 */
function finishStream(head, inputBytes) {
  if (!head) return { header: EMPTY, dataStart: 0, inputBytes, tail: EMPTY, finalised: false }
  try {
    if (!head.finaliser) throw new Error('the finaliser failed earlier')
    const f = head.finaliser.finish()
    return {
      header: f.header,
      dataStart: f.inputDataStart,
      inputBytes,
      tail: f.tail,
      finalised: true,
      durationMs: Number.isFinite(f.durationMs) ? Math.round(f.durationMs) : undefined,
    }
  } catch {
    return { header: head.provisional, dataStart: head.dataStart, inputBytes, tail: EMPTY, finalised: false }
  }
}

/**
 * Feeds a finaliser and remembers the header region it wrote, so that the byte mapping of the
 * upload stream (header region of `headerLength` bytes, then input from `dataStart`) stays fixed
 * even if the finaliser gives up later.
 */
function createStream(contentType) {
  let finaliser = FINALISERS[contentType]?.() ?? null
  let head = null
  const self = {
    /** Null while the header region is not written yet (WebM, MP4), else its length (0: no finaliser). */
    get headerLength() {
      if (head) return head.provisional.length
      return finaliser ? null : 0
    },
    get dataStart() {
      return head ? head.dataStart : 0
    },
    /** Input bytes up to the last whole element, where a recording cut short can end (null: unknown). */
    get completeBytes() {
      return head?.finaliser?.completeBytes ?? null
    },
    push(bytes) {
      if (!finaliser) return
      try {
        const out = finaliser.push(bytes)
        if (!head && finaliser.headerLength !== null)
          head = { finaliser, provisional: out.slice(0, finaliser.headerLength), dataStart: finaliser.inputDataStart }
      } catch {
        finaliser = null
        if (head) head.finaliser = null
      }
    },
    finish(inputBytes) {
      return finishStream(head, inputBytes)
    },
  }
  return self
}

/** Calls an app's callback; what it throws is the app's problem, never the recording's. */
function safely(fn, ...args) {
  try {
    fn?.(...args)
  } catch (err) {
    globalThis.console?.error?.('session-audio recorder: a callback threw', err)
  }
}

const isAbort = (err) => err?.name === 'AbortError'

function startMultipart({ journal, sessionId, meta, headers, signal, state, onError }) {
  return createMultipartUpload({
    routeUrl: meta.routeUrl,
    headers,
    pathname: meta.pathname,
    contentType: meta.contentType,
    clientPayload: JSON.stringify({ contentType: meta.contentType, recording: true }),
    partSize: meta.partSize,
    apiUrl: meta.apiUrl,
    ...(meta.retry ? { retry: meta.retry } : {}),
    state: state ?? undefined,
    // Saved after every change, so a later page can continue the upload. A journal that failed
    // (a full quota) was reported when it did: the upload goes on without the bookkeeping.
    onStateChange: (next) => {
      journal.setMeta(sessionId, { upload: next }).catch((err) => {
        if (!(err instanceof JournalError)) onError?.(err)
      })
    },
    signal,
  })
}

/**
 * The multipart state still valid for `stream`. When the stream was cut (the journal ended inside
 * an element), part 1 (its header changed) and any part reaching past the new body are sent again.
 */
function validParts(state, stream, partSize, cut) {
  if (!state || !cut) return state ?? null
  const bodyEnd = stream.header.length + stream.inputBytes - stream.dataStart
  const keep = (n) => n >= 2 && n * partSize <= bodyEnd
  const parts = Object.fromEntries(Object.entries(state.parts ?? {}).filter(([n]) => keep(Number(n))))
  const sizes = Object.fromEntries(Object.entries(state.sizes ?? {}).filter(([n]) => keep(Number(n))))
  return { ...state, parts, sizes, completed: null }
}

/**
 * Send what a journaled recording still lacks and have the route attach it; the journal ends when
 * the route confirms (201/200). Shared by `stop()` and `resumeSessionUploads()`.
 * - A completion already stored (`storedUrl`) is told to the route first.
 * - The stream is `stream` (stop's own), else rebuilt from the journal, cut at its last whole
 *   element; stored parts still valid for it are reused (`uploadPart` skips them).
 * - When the route cannot use the stored blob (`upload_expired`, `upload_not_found`), the
 *   recording is sent once more from the journal as a new upload (client/complete.mjs).
 * - A final refusal (`isFinalRefusal`) is kept in the journal (`status: 'refused'`) and not retried
 *   by itself; a final 409 (the session moved on) ends the journal. Anything else leaves the journal
 *   pending for the next `resumeSessionUploads()`.
 */
async function deliver({ journal, sessionId, meta, bytes, stream, headers, signal, onUploaded, onError }) {
  let cut = false
  /** The upload stream, built (or rebuilt from the journal) once per delivery. */
  const prepare = async () => {
    if (!stream || (!stream.finalised && meta.contentType in FINALISERS)) {
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
    const { total, slice } = layout(stream)
    const P = meta.partSize
    const common = {
      routeUrl: meta.routeUrl,
      headers,
      pathname: meta.pathname,
      contentType: meta.contentType,
      clientPayload: JSON.stringify({ contentType: meta.contentType, recording: true }),
      apiUrl: meta.apiUrl,
      ...(meta.retry ? { retry: meta.retry } : {}),
      signal,
    }
    let stored
    const state = validParts(meta.upload, stream, P, cut)
    if (!state?.uploadId && total <= P) {
      stored = await putWhole({ ...common, body: await slice(journal, sessionId, 0, total) })
      onUploaded?.(total)
    } else {
      const mpu = startMultipart({ journal, sessionId, meta, headers, signal, state, onError })
      const count = Math.ceil(total / P)
      const send = async (n) => {
        if (mpu.state.parts?.[n]) return
        const body = await slice(journal, sessionId, (n - 1) * P, Math.min(n * P, total))
        await mpu.uploadPart(n, body)
        onUploaded?.(body.size)
      }
      for (let n = 2; n <= count; n++) await send(n)
      await send(1)
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

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/
/** Vercel Blob refuses multipart parts under 5 MiB; smaller ones only on a local store (tests). */
function checkPartSize(partSizeBytes, blobApiUrl) {
  let local = false
  try {
    local = LOOPBACK.test(new URL(blobApiUrl).hostname)
  } catch {}
  if (!Number.isInteger(partSizeBytes) || partSizeBytes < 64 * 1024)
    throw new RangeError('partSizeBytes must be a whole number of bytes, at least 64 KiB')
  if (!local && partSizeBytes < 5 * 1024 * 1024)
    throw new RangeError('partSizeBytes must be at least 5 MiB: Vercel Blob refuses smaller multipart parts')
}

/**
 * Record `sessionId`'s audio. See client.d.ts for the options and docs/recorder.md for what each
 * failure loses.
 */
export function createSessionRecorder(sessionId, options = {}) {
  const {
    stream: givenStream,
    mimeType: wantedType,
    timesliceMs = 1000,
    maxDurationMs,
    partSizeBytes = DEFAULT_PART_BYTES,
    audioBitsPerSecond,
    blobApiUrl,
    retry,
    routeUrl = defaultRoute(sessionId),
    headers = {},
    journal: journalOption,
    dbName,
    userId: userIdOption,
    onStateChange,
    onProgress,
    onError,
  } = options
  if (timesliceMs > 1000) throw new RangeError('timesliceMs is at most 1000: a crash loses at most one timeslice')
  checkPartSize(partSizeBytes, blobApiUrl)

  let state = 'idle'
  let media = null
  let mediaStopped = null
  let stream = null
  let journal = null
  let begun = false
  let out = null
  let meta = null
  let seq = 0
  let inputBytes = 0
  let uploadedBytes = 0
  let recordedMs = 0
  let runningSince = null
  let mpu = null
  let nextPart = 2
  let pumping = null
  /** No more uploads while recording: a final refusal came (stop() still tries once more). */
  let halted = false
  /** After a failed part, when to try again. */
  let retryAt = 0
  let chunks = Promise.resolve()
  let failure = null
  let stopTimer = null
  let releaseLock = null
  let heldBytes = 0
  const stats = { maxHeldBytes: 0, partsBeforeStop: 0, journal: null }
  const abort = new AbortController()
  let finished = null

  const hold = (n) => {
    heldBytes += n
    stats.maxHeldBytes = Math.max(stats.maxHeldBytes, heldBytes)
  }
  const setState = (next) => {
    state = next
    safely(onStateChange, next)
  }
  const now = () => (globalThis.performance ? performance.now() : Date.now())
  const elapsed = () => recordedMs + (runningSince === null ? 0 : now() - runningSince)
  const progress = () =>
    safely(onProgress, { recordedMs: Math.round(elapsed()), uploadedBytes, journaledBytes: inputBytes })
  const report = (err) => safely(onError, err)
  const fail = (err) => {
    failure ??= err
    report(err)
  }
  const release = () => {
    active.delete(sessionId)
    releaseLock?.()
    releaseLock = null
  }

  /** Upload-stream bytes that are final so far (all but the header region's). */
  const H = () => out.headerLength
  const D = () => out.dataStart
  const outBytes = () => (H() === null ? 0 : H() + inputBytes - D())

  /** Parts 2, 3, … as they fill, one at a time (so at most one part is in flight). */
  function pump() {
    if (pumping || halted || Date.now() < retryAt || abort.signal.aborted) return pumping
    pumping = (async () => {
      while (!halted && H() !== null && outBytes() >= nextPart * meta.partSize) {
        const n = nextPart
        const a = (n - 1) * meta.partSize - H() + D()
        const body = await journal.read(sessionId, a, a + meta.partSize)
        hold(body.size)
        try {
          mpu ??= startMultipart({ journal, sessionId, meta, headers, signal: abort.signal, onError: report })
          await mpu.uploadPart(n, body)
          if (state === 'recording' || state === 'paused') stats.partsBeforeStop++
        } finally {
          hold(-body.size)
        }
        uploadedBytes += body.size
        nextPart++
        progress()
      }
    })()
      .catch(async (err) => {
        if (isAbort(err)) return
        if (err?.code === 'multipart_upload_not_found') {
          // Blob forgot the upload: start another from the journal.
          mpu = null
          nextPart = 2
          await journal.setMeta(sessionId, { upload: null }).catch(() => {})
          return
        }
        report(err)
        if (isFinal(err)) {
          // The route will not take this recording as it stands (the session moved on, a limit):
          // stop uploading; stop() tries once more and reports the refusal.
          halted = true
          if (err.status === 409 && (state === 'recording' || state === 'paused')) recorder.stop().catch(() => {})
        } else retryAt = Date.now() + 10_000 // the next chunk after this tries again
      })
      .finally(() => {
        pumping = null
      })
    return pumping
  }

  /**
   * The journal refused a chunk (a full quota, a closed database, a value it cannot store): the
   * recording goes on with this and every later chunk in memory (`stats.journal` 'memory'), parts
   * still upload while recording, and onError says that a reload now loses what is not uploaded.
   */
  function spill(err) {
    journal = spillToMemory(journal, sessionId, inputBytes)
    stats.journal = 'memory'
    const why = err instanceof JournalError ? err : null
    const notice = new JournalError(
      why?.code ?? 'journal_failed',
      `The recording journal stopped taking writes (${err?.message ?? err}). The recording goes on in ` +
        `memory and its parts still upload while it records, but a reload, a closed tab or a crash now ` +
        `loses everything recorded from here that is not uploaded yet.`,
      { cause: err },
    )
    notice.recordingContinues = true
    report(notice)
  }

  /** One MediaRecorder chunk: into the journal first, then through the finaliser. */
  async function take(blob) {
    if (!blob || blob.size === 0 || abort.signal.aborted) return
    const mySeq = seq++
    const at = Math.round(elapsed())
    // MP4: WebKit's last chunk can hold its last moof twice; the first becomes padding (same length).
    const repaired =
      meta.contentType === 'audio/mp4' ? repairRepeatedMoof(new Uint8Array(await blob.arrayBuffer())) : null
    const chunk = repaired ?? blob
    try {
      await journal.append(sessionId, mySeq, chunk, { recordedMs: at })
    } catch (err) {
      // A write failure never stops the recording: from this chunk on it is kept in memory.
      spill(err)
      await journal.append(sessionId, mySeq, chunk, { recordedMs: at })
    }
    if (out.headerLength !== 0) {
      const bytes = repaired ?? new Uint8Array(await blob.arrayBuffer())
      hold(bytes.length)
      out.push(bytes)
      hold(-bytes.length)
    }
    inputBytes += blob.size
    progress()
    if (maxDurationMs && elapsed() >= maxDurationMs && state === 'recording') recorder.stop().catch(() => {})
    pump()
  }

  /** Undo a start() that did not get to record. */
  async function abandon() {
    if (stream && !givenStream) stream.getTracks().forEach((t) => t.stop())
    if (begun) await journal.remove(sessionId).catch(() => {})
    release()
  }

  const recorder = {
    get state() {
      return state
    },
    get mimeType() {
      return meta?.mimeType ?? null
    },
    /** Measured, not assumed: the most audio bytes the recorder held in memory at once. */
    stats,
    /** What stopped the recording or an upload, if anything did. */
    get error() {
      return failure
    },

    async start() {
      if (state !== 'idle') throw new Error(`start() in state ${state}`)
      setState('starting')
      const cancelled = () => abort.signal.aborted
      try {
        journal =
          journalOption === 'memory' ? createMemoryJournal() : (journalOption ?? (await openJournal(dbOptions(dbName))))
        stats.journal = journal.kind === 'memory' ? 'memory' : (journal.valueFormat ?? 'blob')
        if (cancelled()) return await abandon()
        stream = givenStream ?? (await navigator.mediaDevices.getUserMedia({ audio: true }))
        if (cancelled()) return await abandon()
        const mimeType = wantedType ?? pickRecordingType()
        if (!mimeType)
          throw new SessionAudioUploadError(
            415,
            'unsupported_media_type',
            'This browser records no audio type the route accepts (WebM/Opus or MP4/AAC).',
          )
        // Made before the journal, so a type the browser refuses leaves nothing behind.
        media = new MediaRecorder(stream, audioBitsPerSecond ? { mimeType, audioBitsPerSecond } : { mimeType })
        const contentType = essence(mimeType)
        // Whose recording this is: only their pages resume it (docs/recorder.md, "Shared browsers").
        const userId = await whoFor(userIdOption, headers)
        meta = {
          routeUrl,
          mimeType,
          contentType,
          pathname: `listening-sessions/${sessionId}/recording.${EXTENSIONS[contentType] ?? 'webm'}`,
          partSize: partSizeBytes,
          apiUrl: blobApiUrl,
          retry,
          startedAt: Date.now(),
          status: 'recording',
          upload: null,
          ...(userId ? { userId } : {}),
        }
        // An empty journal a failed start left behind is replaced; one with audio is not.
        const existing = await journal.get(sessionId)
        await journal.begin(sessionId, meta, { replace: existing !== null && existing.bytes === 0 })
        begun = true
        active.add(sessionId)
        if (globalThis.navigator?.locks)
          await new Promise((locked, refused) => {
            navigator.locks
              .request(`session-audio:${sessionId}`, () => {
                locked()
                return new Promise((r) => (releaseLock = r))
              })
              .catch(refused)
          })
        if (cancelled()) return await abandon()
        out = createStream(contentType)
        mediaStopped = new Promise((r) => media.addEventListener('stop', r, { once: true }))
        media.ondataavailable = (e) => {
          // A chunk waiting for the journal is audio in memory too: it counts until journaled.
          const size = e.data?.size ?? 0
          hold(size)
          chunks = chunks
            .then(() => take(e.data))
            .catch((err) => fail(err))
            .finally(() => hold(-size))
        }
        media.onerror = (e) => fail(e.error ?? new Error('MediaRecorder failed'))
        // The recorder can stop by itself (the microphone unplugged, permission revoked, the
        // stream ended): finish as if stop() had been called.
        media.addEventListener('stop', () => {
          if (state === 'recording' || state === 'paused') recorder.stop().catch(() => {})
        })
        media.start(timesliceMs)
        runningSince = now()
        setState('recording')
        if (maxDurationMs)
          stopTimer = setInterval(() => elapsed() >= maxDurationMs && recorder.stop().catch(() => {}), 250)
      } catch (err) {
        await abandon()
        setState('failed')
        throw err
      }
    },

    pause() {
      if (state !== 'recording') return
      media.pause()
      recordedMs += now() - runningSince
      runningSince = null
      setState('paused')
    },

    resume() {
      if (state !== 'paused') return
      media.resume()
      runningSince = now()
      setState('recording')
    },

    /** Stop, send what is left (part 1 last) and complete: resolves with the route's answer. */
    stop() {
      if (finished) return finished
      if (state !== 'recording' && state !== 'paused') return Promise.reject(new Error(`stop() in state ${state}`))
      finished = (async () => {
        try {
          clearInterval(stopTimer)
          setState('stopping')
          if (media.state !== 'inactive') media.stop()
          await mediaStopped
          if (runningSince !== null) recordedMs += now() - runningSince
          runningSince = null
          if (!givenStream) stream.getTracks().forEach((t) => t.stop())
          await chunks
          await pumping
          if (abort.signal.aborted) throw abort.signal.reason ?? new DOMException('cancelled', 'AbortError')
          setState('uploading')
          if (inputBytes === 0)
            throw failure ?? new SessionAudioUploadError(400, 'empty_recording', 'Nothing was recorded.')
          await journal.setMeta(sessionId, { status: 'stopped', recordedMs: Math.round(recordedMs) }).catch(() => {})
          // A part that failed while recording is sent again now (the stored ones are skipped).
          const result = await deliver({
            journal,
            sessionId,
            meta: { ...meta, upload: mpu?.state ?? null },
            bytes: inputBytes,
            stream: failure instanceof JournalError ? null : out.finish(inputBytes),
            headers,
            signal: abort.signal,
            onUploaded: (n) => {
              uploadedBytes += n
              progress()
            },
            onError: report,
          })
          setState('done')
          return result
        } catch (err) {
          if (abort.signal.aborted) throw err
          fail(err)
          setState('failed')
          throw err
        } finally {
          release()
          // cancel() still needs it to drop the journal.
          if (!abort.signal.aborted) journal?.close?.()
        }
      })()
      return finished
    },

    /** Stop without uploading, and drop the journal. */
    async cancel() {
      if (state === 'done' || state === 'cancelled') return
      clearInterval(stopTimer)
      abort.abort()
      if (media && media.state !== 'inactive') media.stop()
      if (stream && !givenStream) stream.getTracks().forEach((t) => t.stop())
      await chunks.catch(() => {})
      await finished?.catch(() => {})
      if (begun) await journal.remove(sessionId).catch(() => {})
      release()
      journal?.close?.()
      setState('cancelled')
    },
  }
  return recorder
}

const dbOptions = (dbName) => (dbName ? { dbName } : {})

/** Run `fn` with the caller's journal, or one opened for it and closed after. */
async function withJournal(given, fn, dbName) {
  const journal = given ?? (await openJournal(dbOptions(dbName)))
  try {
    return await fn(journal)
  } finally {
    if (!given) journal.close()
  }
}

/**
 * Recordings this browser journaled for this user and did not finish (not those this page is
 * recording). The user is `userId`, else the one the credentials name (client/user.mjs); journals
 * recorded without a user are everyone's.
 */
export async function pendingSessionUploads({ journal, dbName, userId, headers } = {}) {
  const user = await whoFor(userId, headers)
  return withJournal(
    journal,
    async (j) =>
      (await j.list())
        .filter((r) => !active.has(r.sessionId) && belongsTo(r.meta, user))
        .map((r) => ({
          sessionId: r.sessionId,
          bytes: r.bytes,
          chunkCount: r.chunkCount,
          recordedMs: r.recordedMs ?? r.meta.recordedMs ?? 0,
          startedAt: r.meta.startedAt,
          status: r.meta.status,
          ...(r.meta.userId ? { userId: r.meta.userId } : {}),
          ...(r.meta.refusal ? { refusal: r.meta.refusal } : {}),
        })),
    dbName,
  )
}

/** Hold the session's lock (a tab recording it holds it) while `fn` runs; null when it is held. */
async function whileUnlocked(sessionId, fn) {
  if (active.has(sessionId)) return null
  if (!globalThis.navigator?.locks) return fn()
  return navigator.locks.request(`session-audio:${sessionId}`, { ifAvailable: true }, (lock) => (lock ? fn() : null))
}

/** Drop one journaled recording (its audio is gone from this browser); not one a tab is recording. */
export async function discardSessionUpload(sessionId, { journal, dbName } = {}) {
  return withJournal(
    journal,
    async (j) => {
      const done = await whileUnlocked(sessionId, async () => {
        await j.remove(sessionId)
        return true
      })
      if (!done) {
        const err = new Error(`Session ${sessionId} is being recorded in this or another tab: stop it there first.`)
        err.code = 'recording_in_progress'
        throw err
      }
    },
    dbName,
  )
}

/**
 * Rebuild the upload stream of a journaled recording: the finaliser re-fed from the journal. A
 * crash or a reload ends the journal inside an element (MediaRecorder cuts chunks where its timer
 * fires: Chromium's end one byte into the next block), so it is finalised up to its last whole
 * element and the bytes after it (a fraction of the last timeslice) are left out.
 */
async function rebuild(journal, sessionId, bytes, contentType) {
  const feed = async (end) => {
    const out = createStream(contentType)
    const step = 1024 * 1024
    for (let at = 0; at < end && out.headerLength !== 0; at += step)
      out.push(new Uint8Array(await (await journal.read(sessionId, at, Math.min(end, at + step))).arrayBuffer()))
    return out
  }
  const out = await feed(bytes)
  const cut = out.completeBytes
  const whole = out.finish(bytes)
  if (whole.finalised || cut === null || cut <= out.dataStart || cut >= bytes) return whole
  return (await feed(cut)).finish(cut)
}

/**
 * Finish every recording this browser journaled and did not finish: finalise it from the journal
 * up to its last whole element, upload what is missing (reusing the parts already stored while
 * the multipart upload is still valid, else starting again from the journal), and complete it.
 * A recording a tab is still recording is left alone (its lock is held), so is another user's
 * (`userId`, else the user the credentials name: client/user.mjs), and one the route refused for
 * good is reported again, not resent (`discardSessionUpload` drops it).
 * Resolves with one outcome per recording: `{ sessionId, result }` or `{ sessionId, error }`.
 */
export async function resumeSessionUploads({ headers = {}, journal: given, dbName, userId, onProgress, onError } = {}) {
  const user = await whoFor(userId, headers)
  return withJournal(
    given,
    async (journal) => {
      const outcomes = []
      for (const { sessionId, meta: listed } of await journal.list()) {
        // Another user's recording: not theirs to send, nor to have refused. Left as it is.
        if (!belongsTo(listed, user)) continue
        const outcome = await whileUnlocked(sessionId, async () => {
          // Read again under the lock: the list may be minutes old by now.
          const entry = await journal.get(sessionId)
          if (!entry || entry.bytes === 0 || !belongsTo(entry.meta, user)) return null
          const { meta, bytes } = entry
          if (meta.status === 'refused' && meta.refusal) {
            const { status, code, message, final } = meta.refusal
            const refusal = new SessionAudioUploadError(status, code, message, { final })
            // Kept as refused by an earlier version that took an outage, a missing upload or
            // another user's page for a final answer: tried again like any pending recording.
            if (isFinal(refusal)) return { sessionId, error: refusal }
          }
          active.add(sessionId)
          try {
            let uploadedBytes = 0
            const result = await deliver({
              journal,
              sessionId,
              meta,
              bytes,
              stream: null,
              headers,
              onUploaded: (n) => {
                uploadedBytes += n
                safely(onProgress, { sessionId, uploadedBytes, journaledBytes: bytes })
              },
              onError: (err) => safely(onError, err),
            }).catch(async (err) => {
              // The multipart upload expired: once more, from the journal.
              if (err?.code !== 'multipart_upload_not_found') throw err
              await journal.setMeta(sessionId, { upload: null }).catch(() => {})
              return deliver({ journal, sessionId, meta: { ...meta, upload: null }, bytes, stream: null, headers })
            })
            return { sessionId, result }
          } catch (error) {
            return { sessionId, error }
          } finally {
            active.delete(sessionId)
          }
        })
        if (outcome) outcomes.push(outcome)
      }
      return outcomes
    },
    dbName,
  )
}
