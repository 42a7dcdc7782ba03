// The recorder's upload stream: what the finaliser writes (client/finalise/), a header region of
// fixed length (`H` bytes) followed by the recording from its first Cluster or moof (input byte
// `D` on), then the WebM Cues. Every byte after the header region is final when written, and the
// header region is written at once in its provisional form (same length as the final one), so
// parts 1, 2, … go up as they fill, part 1 with the provisional header region; the route writes the
// final one at completion (docs/stop-to-transcribing.md). After a crash the stream is rebuilt from
// the journal (`rebuild`).
import { createFinaliser } from '../finalise/finaliser.mjs'

/**
 * Where each byte of the upload stream comes from: `header` (the final or the provisional header
 * region: client/recorder/deliver.mjs picks), the journal from input byte `D`, then the Cues.
 */
export function layout({ header, dataStart, inputBytes, tail }) {
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
 * The upload stream's end: the final header region (`header`) and the provisional one written while
 * recording (`provisional`, what part 1 went up with). `head`: `{ finaliser, provisional,
 * dataStart }` once the finaliser wrote its header region, else null (the stream is the recording
 * as it is). When the finaliser cannot finish, the provisional stream goes up: still playable (and
 * the route can still rewrite its header region); the audio is never lost over its index.
 */
function finishStream(head, inputBytes) {
  if (!head) return { header: EMPTY, provisional: EMPTY, dataStart: 0, inputBytes, tail: EMPTY, finalised: false }
  try {
    if (!head.finaliser) throw new Error('the finaliser failed earlier')
    const f = head.finaliser.finish()
    return {
      header: f.header,
      provisional: head.provisional,
      dataStart: f.inputDataStart,
      inputBytes,
      tail: f.tail,
      finalised: true,
      durationMs: Number.isFinite(f.durationMs) ? Math.round(f.durationMs) : undefined,
    }
  } catch {
    const { provisional, dataStart } = head
    return { header: provisional, provisional, dataStart, inputBytes, tail: EMPTY, finalised: false }
  }
}

/**
 * Feeds a finaliser and remembers the header region it wrote, so that the byte mapping of the
 * upload stream (header region of `headerLength` bytes, then input from `dataStart`) stays fixed
 * even if the finaliser gives up later.
 */
export function createStream(contentType) {
  let finaliser = createFinaliser(contentType)
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
    /** The header region as written while recording (empty without a finaliser). */
    get provisional() {
      return head ? head.provisional : EMPTY
    },
    /**
     * Bytes [a, b) of the stream as written so far (the provisional header region, then the
     * journal): a part sent while recording. `b` is at most what was written.
     */
    written(journal, sessionId, a, b) {
      const H = self.headerLength ?? 0
      return layout({
        header: self.provisional,
        dataStart: self.dataStart,
        inputBytes: b - H + self.dataStart,
        tail: EMPTY,
      }).slice(journal, sessionId, a, b)
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
 * Rebuild the upload stream of a journaled recording: the finaliser re-fed from the journal. A
 * crash or a reload ends the journal inside an element (MediaRecorder cuts chunks where its timer
 * fires: Chromium's end one byte into the next block), so it is finalised up to its last whole
 * element and the bytes after it (a fraction of the last timeslice) are left out.
 */
export async function rebuild(journal, sessionId, bytes, contentType) {
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
