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
import { SessionAudioUploadError } from './errors.mjs'
import { openJournal, JournalError } from './journal.mjs'
import { createMultipartUpload, putWhole } from './parts.mjs'
import { createMp4Finaliser } from './mp4.mjs'
import { createWebmFinaliser } from './webm.mjs'

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
    return { header: f.header, dataStart: f.inputDataStart, inputBytes, tail: f.tail, finalised: true }
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
  const finalisers = { 'audio/webm': createWebmFinaliser, 'audio/mp4': createMp4Finaliser }
  let finaliser = finalisers[contentType]?.() ?? null
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

/**
 * Journal bookkeeping after the journal failed (a full quota, a closed database): the failure was
 * reported when it happened, and the upload goes on without it (a crash now restarts it from what
 * was journaled).
 */
const journalAside = (err) => {
  if (!(err instanceof JournalError)) throw err
}

/** The route's answer to the completion event; 200/201 end the journal. */
async function completeOnRoute({ routeUrl, headers, url, durationMs, signal }) {
  const payload = durationMs === undefined ? { url } : { url, durationMs }
  const res = await fetch(routeUrl, {
    method: 'POST',
    headers: { ...headers, 'content-type': 'application/json' },
    body: JSON.stringify({ type: 'session-audio.complete-upload', payload }),
    signal,
  })
  let body = null
  try {
    body = await res.json()
  } catch {}
  if (!res.ok) {
    const error = body && body.error
    throw new SessionAudioUploadError(
      res.status,
      (error && error.code) || `http_${res.status}`,
      (error && error.message) || `The audio route answered ${res.status}.`,
    )
  }
  return body
}

/**
 * Upload what remains of a journaled recording and complete it: the parts not yet stored (part 1
 * last), or one PUT when it fits one part, then the route's completion. Shared by `stop()` and
 * `resumeSessionUploads()`.
 */
async function finishUpload({ journal, sessionId, meta, stream, mpu, headers, durationMs, signal, onUploaded }) {
  const { total, slice } = layout(stream)
  const P = meta.partSize
  const common = {
    routeUrl: meta.routeUrl,
    headers,
    pathname: meta.pathname,
    contentType: meta.contentType,
    clientPayload: JSON.stringify({ contentType: meta.contentType, recording: true }),
    apiUrl: meta.apiUrl,
    signal,
  }
  let stored
  if (!mpu && total <= P) {
    stored = await putWhole({ ...common, body: await slice(journal, sessionId, 0, total) })
    onUploaded?.(total)
  } else {
    const upload = mpu ?? startMultipart(journal, sessionId, meta, headers, signal)
    const count = Math.ceil(total / P)
    for (let n = 2; n <= count; n++) {
      const body = await slice(journal, sessionId, (n - 1) * P, Math.min(n * P, total))
      await upload.uploadPart(n, body)
      onUploaded?.(body.size)
    }
    await upload.uploadPart(1, await slice(journal, sessionId, 0, Math.min(P, total)))
    onUploaded?.(Math.min(P, total))
    stored = await upload.complete(count)
  }
  await journal.setMeta(sessionId, { status: 'completing', storedUrl: stored.url }).catch(journalAside)
  const result = await completeOnRoute({ routeUrl: meta.routeUrl, headers, url: stored.url, durationMs, signal })
  await journal.remove(sessionId).catch(journalAside)
  return result
}

function startMultipart(journal, sessionId, meta, headers, signal) {
  return createMultipartUpload({
    routeUrl: meta.routeUrl,
    headers,
    pathname: meta.pathname,
    contentType: meta.contentType,
    clientPayload: JSON.stringify({ contentType: meta.contentType, recording: true }),
    partSize: meta.partSize,
    apiUrl: meta.apiUrl,
    state: meta.upload ?? undefined,
    onStateChange: (state) => journal.setMeta(sessionId, { upload: state }).catch(journalAside),
    signal,
  })
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
    routeUrl = defaultRoute(sessionId),
    headers = {},
    journal: journalOption,
    onStateChange,
    onProgress,
    onError,
  } = options
  if (timesliceMs > 1000) throw new RangeError('timesliceMs is at most 1000: a crash loses at most one timeslice')

  let state = 'idle'
  let media = null
  let stream = null
  let journal = null
  let out = null
  let meta = null
  let seq = 0
  let inputBytes = 0
  let uploadedBytes = 0
  let recordedMs = 0
  /** The recorded time when the last chunk went into the journal. */
  let journaledMs = 0
  let runningSince = null
  let mpu = null
  let nextPart = 2
  let pumping = null
  let chunks = Promise.resolve()
  let failure = null
  let stopTimer = null
  let releaseLock = null
  let heldBytes = 0
  const stats = { maxHeldBytes: 0, partsBeforeStop: 0 }
  const abort = new AbortController()
  let finished = null

  const hold = (n) => {
    heldBytes += n
    stats.maxHeldBytes = Math.max(stats.maxHeldBytes, heldBytes)
  }
  const setState = (next) => {
    state = next
    onStateChange?.(next)
  }
  const now = () => (globalThis.performance ? performance.now() : Date.now())
  const elapsed = () => recordedMs + (runningSince === null ? 0 : now() - runningSince)
  const progress = () => onProgress?.({ recordedMs: Math.round(elapsed()), uploadedBytes, journaledBytes: inputBytes })
  const fail = (err) => {
    failure ??= err
    onError?.(err)
  }

  /** Upload-stream bytes that are final so far (all but the header region's). */
  const H = () => out.headerLength
  const D = () => out.dataStart
  const outBytes = () => (H() === null ? 0 : H() + inputBytes - D())

  /** Parts 2, 3, … as they fill, one at a time (so at most one part is in flight). */
  function pump() {
    if (pumping) return pumping
    pumping = (async () => {
      while (!failure && H() !== null && outBytes() >= nextPart * meta.partSize) {
        const n = nextPart
        const a = (n - 1) * meta.partSize - H() + D()
        const body = await journal.read(sessionId, a, a + meta.partSize)
        hold(body.size)
        try {
          mpu ??= startMultipart(journal, sessionId, meta, headers, abort.signal)
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
      .catch((err) => fail(err))
      .finally(() => {
        pumping = null
      })
    return pumping
  }

  /** One MediaRecorder chunk: into the journal first, then through the finaliser. */
  async function take(blob) {
    // After the journal failed, the recording is stopping: later chunks cannot be kept.
    if (!blob || blob.size === 0 || failure instanceof JournalError) return
    const mySeq = seq++
    const at = Math.round(elapsed())
    try {
      await journal.append(sessionId, mySeq, blob, { recordedMs: at })
    } catch (err) {
      // The journal cannot take more (a full quota, a closed database): stop recording and send
      // what it holds; the error says why.
      fail(err)
      if (media && media.state !== 'inactive') queueMicrotask(() => recorder.stop().catch(() => {}))
      return
    }
    if (out.headerLength !== 0) {
      const bytes = new Uint8Array(await blob.arrayBuffer())
      hold(bytes.length)
      out.push(bytes)
      hold(-bytes.length)
    }
    inputBytes += blob.size
    journaledMs = at
    progress()
    if (maxDurationMs && elapsed() >= maxDurationMs && state === 'recording')
      queueMicrotask(() => recorder.stop().catch(() => {}))
    pump()
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
      try {
        journal = journalOption === 'memory' ? createMemoryJournal() : (journalOption ?? (await openJournal()))
        stream = givenStream ?? (await navigator.mediaDevices.getUserMedia({ audio: true }))
        const mimeType = wantedType ?? pickRecordingType()
        if (!mimeType)
          throw new SessionAudioUploadError(
            415,
            'unsupported_media_type',
            'This browser records no audio type the route accepts (WebM/Opus or MP4/AAC).',
          )
        const contentType = essence(mimeType)
        meta = {
          routeUrl,
          mimeType,
          contentType,
          pathname: `listening-sessions/${sessionId}/recording.${EXTENSIONS[contentType] ?? 'webm'}`,
          partSize: partSizeBytes,
          apiUrl: blobApiUrl,
          startedAt: Date.now(),
          status: 'recording',
          upload: null,
        }
        await journal.begin(sessionId, meta)
        active.add(sessionId)
        if (globalThis.navigator?.locks)
          await new Promise((locked) => {
            navigator.locks.request(`session-audio:${sessionId}`, () => {
              locked()
              return new Promise((release) => (releaseLock = release))
            })
          })
        out = createStream(contentType)
        media = new MediaRecorder(stream, audioBitsPerSecond ? { mimeType, audioBitsPerSecond } : { mimeType })
        media.ondataavailable = (e) => {
          chunks = chunks.then(() => take(e.data))
        }
        media.onerror = (e) => fail(e.error ?? new Error('MediaRecorder failed'))
        media.start(timesliceMs)
        runningSince = now()
        setState('recording')
        if (maxDurationMs)
          stopTimer = setInterval(() => elapsed() >= maxDurationMs && recorder.stop().catch(() => {}), 250)
      } catch (err) {
        active.delete(sessionId)
        releaseLock?.()
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
        clearInterval(stopTimer)
        setState('stopping')
        const stopped = new Promise((r) => media.addEventListener('stop', r, { once: true }))
        if (media.state !== 'inactive') media.stop()
        await stopped
        if (runningSince !== null) recordedMs += now() - runningSince
        runningSince = null
        if (!givenStream) stream.getTracks().forEach((t) => t.stop())
        await chunks
        await pump()
        setState('uploading')
        try {
          if (inputBytes === 0)
            throw failure ?? new SessionAudioUploadError(400, 'empty_recording', 'Nothing was recorded.')
          if (failure && !(failure instanceof JournalError)) throw failure
          await journal
            .setMeta(sessionId, { status: 'stopped', recordedMs: Math.round(recordedMs) })
            .catch(journalAside)
          const result = await finishUpload({
            journal,
            sessionId,
            meta,
            stream: out.finish(inputBytes),
            mpu,
            headers,
            // What the journal holds when it stopped taking chunks; else all that was recorded.
            durationMs: failure instanceof JournalError ? journaledMs : Math.round(recordedMs),
            signal: abort.signal,
            onUploaded: (n) => {
              uploadedBytes += n
              progress()
            },
          })
          setState('done')
          return result
        } catch (err) {
          fail(err)
          // A session that moved on will never take this recording: its journal ends here.
          if (err instanceof SessionAudioUploadError && err.status === 409)
            await journal.remove(sessionId).catch(() => {})
          setState('failed')
          throw err
        } finally {
          active.delete(sessionId)
          releaseLock?.()
        }
      })()
      return finished
    },

    /** Stop without uploading, and drop the journal. */
    async cancel() {
      clearInterval(stopTimer)
      abort.abort()
      if (media && media.state !== 'inactive') media.stop()
      if (stream && !givenStream) stream.getTracks().forEach((t) => t.stop())
      await chunks.catch(() => {})
      await journal?.remove(sessionId).catch(() => {})
      active.delete(sessionId)
      releaseLock?.()
      setState('cancelled')
    },
  }
  return recorder
}

/** Recordings this browser journaled and did not finish (not those this page is recording). */
export async function pendingSessionUploads({ journal } = {}) {
  const j = journal ?? (await openJournal())
  const all = await j.list()
  return all
    .filter((r) => !active.has(r.sessionId))
    .map((r) => ({
      sessionId: r.sessionId,
      bytes: r.bytes,
      chunkCount: r.chunkCount,
      recordedMs: r.recordedMs ?? r.meta.recordedMs ?? 0,
      startedAt: r.meta.startedAt,
      status: r.meta.status,
    }))
}

/** Drop one journaled recording (its audio is gone from this browser). */
export async function discardSessionUpload(sessionId, { journal } = {}) {
  const j = journal ?? (await openJournal())
  await j.remove(sessionId)
}

/** Rebuild the upload stream of a journaled recording: the finaliser re-fed from the journal. */
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
  // A crash or a reload ends the journal inside an element (MediaRecorder cuts chunks where its
  // timer fires: Chromium's end one byte into the next block): finalise up to the last whole one
  // (the bytes after it are a fraction of the last timeslice).
  return (await feed(cut)).finish(cut)
}

/**
 * Finish every recording this browser journaled and did not finish: finalise it from the journal
 * up to its last chunk, upload what is missing (reusing the parts already stored while the
 * multipart upload is still valid, else starting again from the journal), and complete it.
 * Resolves with one outcome per recording: `{ sessionId, result }` or `{ sessionId, error }`.
 */
export async function resumeSessionUploads({ headers = {}, journal: given, onProgress } = {}) {
  const journal = given ?? (await openJournal())
  const outcomes = []
  for (const { sessionId, meta, bytes } of await journal.list()) {
    if (active.has(sessionId) || bytes === 0) continue
    const run = async () => {
      active.add(sessionId)
      try {
        const stream = await rebuild(journal, sessionId, bytes, meta.contentType)
        // Parts stored past where the rebuilt stream now ends (it was cut at the last whole block)
        // no longer fit it: start the multipart upload again from the journal.
        const reach = (n) => n * meta.partSize - stream.header.length + stream.dataStart
        const stored = Object.keys(meta.upload?.parts ?? {}).map(Number)
        if (stored.some((n) => n >= 2 && reach(n) > stream.inputBytes)) {
          meta.upload = null
          await journal.setMeta(sessionId, { upload: null })
        }
        let uploadedBytes = 0
        const go = (m, mpu) =>
          finishUpload({
            journal,
            sessionId,
            meta: m,
            stream,
            mpu,
            headers,
            durationMs: undefined, // measured by the route from what landed
            onUploaded: (n) => {
              uploadedBytes += n
              onProgress?.({ sessionId, uploadedBytes, journaledBytes: bytes })
            },
          })
        const mpu = meta.upload ? startMultipart(journal, sessionId, meta, headers) : null
        try {
          return { sessionId, result: await go(meta, mpu) }
        } catch (err) {
          // The stored parts are gone (the multipart upload expired): again from the journal.
          if (mpu && err?.status === 404) {
            const fresh = { ...meta, upload: null }
            await journal.setMeta(sessionId, { upload: null })
            return { sessionId, result: await go(fresh, null) }
          }
          throw err
        }
      } catch (error) {
        if (error instanceof SessionAudioUploadError && error.status === 409)
          await journal.remove(sessionId).catch(() => {})
        return { sessionId, error }
      } finally {
        active.delete(sessionId)
      }
    }
    // Another tab still recording it holds its lock: leave it alone.
    if (globalThis.navigator?.locks) {
      const outcome = await navigator.locks.request(`session-audio:${sessionId}`, { ifAvailable: true }, (lock) =>
        lock ? run() : null,
      )
      if (outcome) outcomes.push(outcome)
    } else outcomes.push(await run())
  }
  return outcomes
}
