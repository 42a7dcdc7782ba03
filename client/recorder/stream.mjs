// The recorder's upload stream: what the finaliser writes (client/finalise/), a header region of
// fixed length (`H` bytes) followed by the recording from its first Cluster or moof (input byte
// `D` on), then the WebM Cues. Every byte after the header region is final when written, so parts
// 2, 3, … go up as they fill; part 1 (which holds the header region) goes last. After a crash the
// stream is rebuilt from the journal (`rebuild`).
import { createFinaliser } from '../finalise/finaliser.mjs'

/**
 * Where each byte of the upload stream comes from, once the recording is over: the final header
 * region, the journal from input byte `D`, then the Cues.
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
