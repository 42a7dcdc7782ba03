// The parts a recording uploads while it records: parts 1, 2, … of the upload stream, one at a time
// as they fill (so at most one part is in flight), read back from the journal. Part 1 goes with the
// provisional header region (the route writes the final one at completion); `stop()`
// (client/recorder/deliver.mjs) sends the rest and any part that failed here.
import { isFinalRefusal as isFinal } from '../route.mjs'
import { startMultipart } from './deliver.mjs'

const isAbort = (err) => err?.name === 'AbortError'

export class LiveUpload {
  /** The multipart upload, made when the first part filled. */
  mpu = null
  /** The next part to send. */
  nextPart = 1
  /** The pass sending filled parts, while one runs. */
  pumping = null
  /** No more uploads while recording: a final refusal came (stop() still tries once more). */
  halted = false
  /** After a failed part, when to try again. */
  retryAt = 0

  /**
   * `recording`: what the recorder shares with it: `sessionId`, `headers`, `signal`, and
   * `journal()`, `meta()`, `out()` (the upload stream), `writtenBytes()` (its bytes written so far,
   * the header region provisional), `recording()` (not stopping yet), `hold(n)` (audio bytes in
   * memory), `onPart(bytes, whileRecording)`, `report(err)` and `stop()`.
   */
  constructor(recording) {
    this.recording = recording
  }

  /** The multipart state to go on from at `stop()` (null: none made yet). */
  get state() {
    return this.mpu?.state ?? null
  }

  /** Send the parts that filled, unless a pass runs already; resolves when that pass ends. */
  pump() {
    if (this.pumping || this.halted || Date.now() < this.retryAt || this.recording.signal.aborted) return this.pumping
    this.pumping = this.#sendFilled()
      .catch((err) => this.#failed(err))
      .finally(() => {
        this.pumping = null
      })
    return this.pumping
  }

  async #sendFilled() {
    const r = this.recording
    const meta = r.meta()
    const P = meta.partSize
    while (!this.halted && r.out().headerLength !== null && r.writtenBytes() >= this.nextPart * P) {
      const n = this.nextPart
      const body = await r.out().written(r.journal(), r.sessionId, (n - 1) * P, n * P)
      r.hold(body.size)
      let whileRecording
      try {
        this.mpu ??= startMultipart({
          journal: r.journal(),
          sessionId: r.sessionId,
          meta,
          headers: r.headers,
          signal: r.signal,
          onError: r.report,
        })
        await this.mpu.uploadPart(n, body)
        whileRecording = r.recording()
      } finally {
        r.hold(-body.size)
      }
      this.nextPart++
      r.onPart(body.size, whileRecording)
    }
  }

  async #failed(err) {
    const r = this.recording
    if (isAbort(err)) return
    if (err?.code === 'multipart_upload_not_found') {
      // Blob forgot the upload: start another from the journal.
      this.mpu = null
      this.nextPart = 1
      await r
        .journal()
        .setMeta(r.sessionId, { upload: null })
        .catch(() => {})
      return
    }
    r.report(err)
    if (isFinal(err)) {
      // The route will not take this recording as it stands (the session moved on, a limit):
      // stop uploading; stop() tries once more and reports the refusal.
      this.halted = true
      if (err.status === 409 && r.recording()) r.stop()
    } else this.retryAt = Date.now() + 10_000 // the next chunk after this tries again
  }
}
