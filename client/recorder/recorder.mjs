// The recorder in `session-audio/client`: records with MediaRecorder, journals every chunk to
// IndexedDB before anything else happens to it, uploads Blob multipart parts while recording
// (client/recorder/live-upload.mjs), and finishes with a file a player can seek
// (client/recorder/stream.mjs, client/finalise/). A reload or a crash loses at most the last
// timeslice: `resumeSessionUploads()` on the next page load finishes what was journaled
// (client/recorder/resume.mjs). docs/recorder.md.
import { SessionAudioUploadError } from '../errors.mjs'
import { repairRepeatedMoof } from '../finalise/mp4.mjs'
import { defaultRouteUrl, essence, recordingPathname } from '../route.mjs'
import { whoFor } from '../user.mjs'
import { deliver } from './deliver.mjs'
import { openJournal, JournalError } from './journal.mjs'
import { checkPartSize } from '../blob/multipart.mjs'
import { LiveUpload } from './live-upload.mjs'
import { createMemoryJournal, spillToMemory } from './memory-journal.mjs'
import { active, dbOptions, safely } from './resume.mjs'
import { createStream } from './stream.mjs'

/**
 * Every non-final part is exactly this: Vercel Blob's minimum (not the SDK's 8 MiB), since after
 * Stop the recorder sends what is left after the last full part, up to one part
 * (docs/stop-to-transcribing.md).
 */
export const DEFAULT_PART_BYTES = 5 * 1024 * 1024
const TYPES = ['audio/webm;codecs=opus', 'audio/webm', 'audio/mp4;codecs=mp4a.40.2', 'audio/mp4']

/** The first type this browser records: WebM/Opus, else MP4/AAC (Safari). */
export function pickRecordingType(isTypeSupported = (t) => globalThis.MediaRecorder?.isTypeSupported?.(t)) {
  return TYPES.find((t) => isTypeSupported(t)) ?? null
}

const now = () => (globalThis.performance ? performance.now() : Date.now())

/**
 * Record `sessionId`'s audio. See client.d.ts for the options and docs/recorder.md for what each
 * failure loses.
 */
export function createSessionRecorder(sessionId, options = {}) {
  return new SessionRecorder(sessionId, options)
}

class SessionRecorder {
  /** Measured, not assumed: the most audio bytes the recorder held in memory at once. */
  stats = { maxHeldBytes: 0, partsBeforeStop: 0, journal: null }
  #sessionId
  #o
  #state = 'idle'
  /** MediaRecorder, the promise of its `stop` event, and the stream it records. */
  #media = { recorder: null, stopped: null, stream: null }
  /** Where every chunk goes first; `#begun` once this recording's entry is in it. */
  #journal = null
  #begun = false
  /** What the recording is stored as (journaled, so a later page can finish it). */
  #meta = null
  /** The upload stream the finaliser writes (client/recorder/stream.mjs). */
  #out = null
  /** Audio recorded, pauses excluded: `recordedMs` until the last pause, and since when it runs. */
  #clock = { recordedMs: 0, runningSince: null }
  /** Bytes recorded (journaled), sent to Blob, and held in memory now. */
  #bytes = { input: 0, uploaded: 0, held: 0 }
  #seq = 0
  /** Chunks are taken one after the other, in order. */
  #chunks = Promise.resolve()
  #live
  /** What stopped the recording or an upload, if anything did. */
  #failure = null
  #stopTimer = null
  #releaseLock = null
  #abort = new AbortController()
  #finished = null

  constructor(sessionId, options) {
    const { timesliceMs = 1000, partSizeBytes = DEFAULT_PART_BYTES, headers = {} } = options
    if (timesliceMs > 1000) throw new RangeError('timesliceMs is at most 1000: a crash loses at most one timeslice')
    checkPartSize(partSizeBytes, options.blobApiUrl)
    this.#sessionId = sessionId
    this.#o = {
      ...options,
      timesliceMs,
      partSizeBytes,
      headers,
      routeUrl: options.routeUrl ?? defaultRouteUrl(sessionId),
    }
    this.#live = new LiveUpload({
      sessionId,
      headers,
      signal: this.#abort.signal,
      journal: () => this.#journal,
      meta: () => this.#meta,
      out: () => this.#out,
      writtenBytes: () => this.#writtenBytes(),
      recording: () => this.#state === 'recording' || this.#state === 'paused',
      hold: (n) => this.#hold(n),
      onPart: (bytes, whileRecording) => {
        if (whileRecording) this.stats.partsBeforeStop++
        this.#bytes.uploaded += bytes
        this.#progress()
      },
      report: (err) => this.#report(err),
      stop: () => this.stop().catch(() => {}),
    })
  }

  get state() {
    return this.#state
  }
  get mimeType() {
    return this.#meta?.mimeType ?? null
  }
  /** What stopped the recording or an upload, if anything did. */
  get error() {
    return this.#failure
  }

  #hold(n) {
    this.#bytes.held += n
    this.stats.maxHeldBytes = Math.max(this.stats.maxHeldBytes, this.#bytes.held)
  }
  #setState(next) {
    this.#state = next
    safely(this.#o.onStateChange, next)
  }
  #elapsed() {
    const { recordedMs, runningSince } = this.#clock
    return recordedMs + (runningSince === null ? 0 : now() - runningSince)
  }
  #progress() {
    safely(this.#o.onProgress, {
      recordedMs: Math.round(this.#elapsed()),
      uploadedBytes: this.#bytes.uploaded,
      journaledBytes: this.#bytes.input,
    })
  }
  #report(err) {
    safely(this.#o.onError, err)
  }
  #fail(err) {
    this.#failure ??= err
    this.#report(err)
  }
  #release() {
    active.delete(this.#sessionId)
    this.#releaseLock?.()
    this.#releaseLock = null
  }
  /** Upload-stream bytes written so far (the header region in its provisional form). */
  #writtenBytes() {
    const H = this.#out.headerLength
    return H === null ? 0 : H + this.#bytes.input - this.#out.dataStart
  }
  #stopTracks() {
    if (this.#media.stream && !this.#o.stream) this.#media.stream.getTracks().forEach((t) => t.stop())
  }

  /**
   * The journal refused a chunk (a full quota, a closed database, a value it cannot store): the
   * recording goes on with this and every later chunk in memory (`stats.journal` 'memory'), parts
   * still upload while recording, and onError says that a reload now loses what is not uploaded.
   */
  #spill(err) {
    this.#journal = spillToMemory(this.#journal, this.#sessionId, this.#bytes.input)
    this.stats.journal = 'memory'
    const why = err instanceof JournalError ? err : null
    const notice = new JournalError(
      why?.code ?? 'journal_failed',
      `The recording journal stopped taking writes (${err?.message ?? err}). The recording goes on in ` +
        `memory and its parts still upload while it records, but a reload, a closed tab or a crash now ` +
        `loses everything recorded from here that is not uploaded yet.`,
      { cause: err },
    )
    notice.recordingContinues = true
    this.#report(notice)
  }

  /** One MediaRecorder chunk: into the journal first, then through the finaliser. */
  async #take(blob) {
    if (!blob || blob.size === 0 || this.#abort.signal.aborted) return
    const seq = this.#seq++
    const at = Math.round(this.#elapsed())
    // MP4: WebKit's last chunk can hold its last moof twice; the first becomes padding (same length).
    const repaired =
      this.#meta.contentType === 'audio/mp4' ? repairRepeatedMoof(new Uint8Array(await blob.arrayBuffer())) : null
    const chunk = repaired ?? blob
    try {
      await this.#journal.append(this.#sessionId, seq, chunk, { recordedMs: at })
    } catch (err) {
      // A write failure never stops the recording: from this chunk on it is kept in memory.
      this.#spill(err)
      await this.#journal.append(this.#sessionId, seq, chunk, { recordedMs: at })
    }
    if (this.#out.headerLength !== 0) {
      const bytes = repaired ?? new Uint8Array(await blob.arrayBuffer())
      this.#hold(bytes.length)
      this.#out.push(bytes)
      this.#hold(-bytes.length)
    }
    this.#bytes.input += blob.size
    this.#progress()
    const { maxDurationMs } = this.#o
    if (maxDurationMs && this.#elapsed() >= maxDurationMs && this.#state === 'recording') this.stop().catch(() => {})
    this.#live.pump()
  }

  /** Undo a start() that did not get to record. */
  async #abandon() {
    this.#stopTracks()
    if (this.#begun) await this.#journal.remove(this.#sessionId).catch(() => {})
    this.#release()
  }

  /** The journal entry this recording starts with: what a later page needs to finish it. */
  async #begin(mimeType) {
    const o = this.#o
    const contentType = essence(mimeType)
    // Whose recording this is: only their pages resume it (docs/recorder.md, "Shared browsers").
    const userId = await whoFor(o.userId, o.headers)
    this.#meta = {
      routeUrl: o.routeUrl,
      mimeType,
      contentType,
      pathname: recordingPathname(this.#sessionId, 'recording', contentType),
      partSize: o.partSizeBytes,
      apiUrl: o.blobApiUrl,
      retry: o.retry,
      startedAt: Date.now(),
      status: 'recording',
      upload: null,
      ...(userId ? { userId } : {}),
    }
    // An empty journal a failed start left behind is replaced; one with audio is not.
    const existing = await this.#journal.get(this.#sessionId)
    await this.#journal.begin(this.#sessionId, this.#meta, { replace: existing !== null && existing.bytes === 0 })
    this.#begun = true
    active.add(this.#sessionId)
    if (globalThis.navigator?.locks)
      await new Promise((locked, refused) => {
        navigator.locks
          .request(`session-audio:${this.#sessionId}`, () => {
            locked()
            return new Promise((r) => (this.#releaseLock = r))
          })
          .catch(refused)
      })
  }

  /** MediaRecorder's chunks go to `#take`, in order; its own stop finishes the recording. */
  #listen(media) {
    this.#media.stopped = new Promise((r) => media.addEventListener('stop', r, { once: true }))
    media.ondataavailable = (e) => {
      // A chunk waiting for the journal is audio in memory too: it counts until journaled.
      const size = e.data?.size ?? 0
      this.#hold(size)
      this.#chunks = this.#chunks
        .then(() => this.#take(e.data))
        .catch((err) => this.#fail(err))
        .finally(() => this.#hold(-size))
    }
    media.onerror = (e) => this.#fail(e.error ?? new Error('MediaRecorder failed'))
    // The recorder can stop by itself (the microphone unplugged, permission revoked, the
    // stream ended): finish as if stop() had been called.
    media.addEventListener('stop', () => {
      if (this.#state === 'recording' || this.#state === 'paused') this.stop().catch(() => {})
    })
  }

  async start() {
    if (this.#state !== 'idle') throw new Error(`start() in state ${this.#state}`)
    this.#setState('starting')
    const o = this.#o
    const cancelled = () => this.#abort.signal.aborted
    try {
      this.#journal =
        o.journal === 'memory' ? createMemoryJournal() : (o.journal ?? (await openJournal(dbOptions(o.dbName))))
      this.stats.journal = this.#journal.kind === 'memory' ? 'memory' : (this.#journal.valueFormat ?? 'blob')
      if (cancelled()) return await this.#abandon()
      this.#media.stream = o.stream ?? (await navigator.mediaDevices.getUserMedia({ audio: true }))
      if (cancelled()) return await this.#abandon()
      const mimeType = o.mimeType ?? pickRecordingType()
      if (!mimeType)
        throw new SessionAudioUploadError(
          415,
          'unsupported_media_type',
          'This browser records no audio type the route accepts (WebM/Opus or MP4/AAC).',
        )
      // Made before the journal, so a type the browser refuses leaves nothing behind.
      const bits = o.audioBitsPerSecond
      const media = new MediaRecorder(this.#media.stream, bits ? { mimeType, audioBitsPerSecond: bits } : { mimeType })
      this.#media.recorder = media
      await this.#begin(mimeType)
      if (cancelled()) return await this.#abandon()
      this.#out = createStream(this.#meta.contentType)
      this.#listen(media)
      media.start(o.timesliceMs)
      this.#clock.runningSince = now()
      this.#setState('recording')
      if (o.maxDurationMs)
        this.#stopTimer = setInterval(() => this.#elapsed() >= o.maxDurationMs && this.stop().catch(() => {}), 250)
    } catch (err) {
      await this.#abandon()
      this.#setState('failed')
      throw err
    }
  }

  pause() {
    if (this.#state !== 'recording') return
    this.#media.recorder.pause()
    this.#clock.recordedMs += now() - this.#clock.runningSince
    this.#clock.runningSince = null
    this.#setState('paused')
  }

  resume() {
    if (this.#state !== 'paused') return
    this.#media.recorder.resume()
    this.#clock.runningSince = now()
    this.#setState('recording')
  }

  /** Stop, send what did not go up while recording, and complete: resolves with the route's answer. */
  stop() {
    if (this.#finished) return this.#finished
    if (this.#state !== 'recording' && this.#state !== 'paused')
      return Promise.reject(new Error(`stop() in state ${this.#state}`))
    this.#finished = this.#finish()
    return this.#finished
  }

  /** MediaRecorder stopped and every chunk taken: the recording as it ends. */
  async #endRecording() {
    clearInterval(this.#stopTimer)
    this.#setState('stopping')
    const media = this.#media.recorder
    if (media.state !== 'inactive') media.stop()
    await this.#media.stopped
    if (this.#clock.runningSince !== null) this.#clock.recordedMs += now() - this.#clock.runningSince
    this.#clock.runningSince = null
    this.#stopTracks()
    await this.#chunks
    await this.#live.pumping
  }

  async #finish() {
    const signal = this.#abort.signal
    try {
      await this.#endRecording()
      if (signal.aborted) throw signal.reason ?? new DOMException('cancelled', 'AbortError')
      this.#setState('uploading')
      const inputBytes = this.#bytes.input
      if (inputBytes === 0)
        throw this.#failure ?? new SessionAudioUploadError(400, 'empty_recording', 'Nothing was recorded.')
      await this.#journal
        .setMeta(this.#sessionId, { status: 'stopped', recordedMs: Math.round(this.#clock.recordedMs) })
        .catch(() => {})
      // A part that failed while recording is sent again now (the stored ones are skipped).
      const result = await deliver({
        journal: this.#journal,
        sessionId: this.#sessionId,
        meta: { ...this.#meta, upload: this.#live.state },
        bytes: inputBytes,
        stream: this.#failure instanceof JournalError ? null : this.#out.finish(inputBytes),
        headers: this.#o.headers,
        signal,
        onUploaded: (n) => {
          this.#bytes.uploaded += n
          this.#progress()
        },
        onError: (err) => this.#report(err),
      })
      this.#setState('done')
      return result
    } catch (err) {
      if (signal.aborted) throw err
      this.#fail(err)
      this.#setState('failed')
      throw err
    } finally {
      this.#release()
      // cancel() still needs it to drop the journal.
      if (!signal.aborted) this.#journal?.close?.()
    }
  }

  /** Stop without uploading, and drop the journal. */
  async cancel() {
    if (this.#state === 'done' || this.#state === 'cancelled') return
    clearInterval(this.#stopTimer)
    this.#abort.abort()
    const media = this.#media.recorder
    if (media && media.state !== 'inactive') media.stop()
    this.#stopTracks()
    await this.#chunks.catch(() => {})
    await this.#finished?.catch(() => {})
    if (this.#begun) await this.#journal.remove(this.#sessionId).catch(() => {})
    this.#release()
    this.#journal?.close?.()
    this.#setState('cancelled')
  }
}
