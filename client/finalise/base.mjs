// What the WebM and MP4 finalisers (client/finalise/webm.mjs, mp4.mjs) share: the streaming plumbing
// around their format logic. A finaliser buffers the header region until the first media element,
// emits a provisional header region of a fixed length, then passes every later byte through while
// its format walker reads them; `finish()` returns the final header region. Plain JS, no dependencies.

/** The header region (before the first Cluster or moof) is read whole; MediaRecorder's is under 1 KiB. */
export const HEAD_LIMIT = 1024 * 1024

/** Why a file could not be finalised; each format has its own subclass (and its own codes). */
export class FinaliseError extends Error {
  constructor(code, message) {
    super(message)
    this.code = code
  }
}

/** A `fail(code, message)` that throws `ErrorClass`. */
export const failWith = (ErrorClass) => (code, message) => {
  throw new ErrorClass(code, message)
}

/**
 * The children of a container held in memory, from `start` to `end`, one after the other:
 * `child(at)` reads the one at `at` (throwing the format's error where it cannot) and returns it
 * with its `end`, where the next begins.
 */
export function childrenOf(start, end, child) {
  const out = []
  for (let at = start; at < end;) {
    const c = child(at)
    out.push(c)
    at = c.end
  }
  return out
}

export function concat(parts) {
  let n = 0
  for (const p of parts) n += p.length
  const out = new Uint8Array(n)
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

/**
 * The base of both finalisers. A subclass provides `readHead()` (parse `this.head` up to
 * `this.headLen`; return `this.headRoom()` while it needs more, `this.beginBody()` at the first
 * media element), `headerRegion(null)` (the provisional header region), `feedBody(bytes)` (the
 * walk after it) and `conclude()` (the result of `finish()`).
 */
export class StreamFinaliser {
  /** `fail` throws the format's error; `first` names the element that ends the header region. */
  constructor(fail, first) {
    this.fail = fail
    this.first = first
    this.state = 'head'
    this.head = new Uint8Array(4096)
    this.headLen = 0
    this.headPos = 0
    // Input bytes consumed by the body walker (the absolute input offset of the next byte).
    this.pos = 0
    this.bytesIn = 0
    this.bytesOut = 0
    this.headerLength = null
    this.inputDataStart = null
  }

  push(chunk) {
    if (this.state === 'failed') this.fail('state', 'this finaliser already failed')
    if (this.state === 'done') this.fail('state', 'push() after finish()')
    const bytes = chunk instanceof Uint8Array ? chunk : new Uint8Array(chunk)
    this.bytesIn += bytes.length
    return this.guard(() => {
      let out
      if (this.state === 'head') {
        this.appendHead(bytes)
        out = this.readHead()
      } else {
        this.feedBody(bytes)
        out = bytes
      }
      this.bytesOut += out.length
      return out
    })
  }

  finish() {
    if (this.state === 'failed') this.fail('state', 'this finaliser already failed')
    if (this.state === 'done') this.fail('state', 'finish() called twice')
    return this.guard(() => {
      const final = this.conclude()
      this.state = 'done'
      return final
    })
  }

  /** Runs `step`; anything it throws leaves the finaliser failed for good. */
  guard(step) {
    try {
      return step()
    } catch (err) {
      this.state = 'failed'
      throw err
    }
  }

  // The header region is buffered whole (≤ HEAD_LIMIT), growing by doubling.
  appendHead(bytes) {
    if (this.headLen + bytes.length > this.head.length) {
      const grown = new Uint8Array(Math.max(this.head.length * 2, this.headLen + bytes.length))
      grown.set(this.head.subarray(0, this.headLen))
      this.head = grown
    }
    this.head.set(bytes, this.headLen)
    this.headLen += bytes.length
  }

  /** The header region is not whole yet: nothing to write out, unless it is already too long. */
  headRoom() {
    if (this.headLen > HEAD_LIMIT) this.headTooLong()
    return new Uint8Array(0)
  }

  headTooLong() {
    this.fail('too_large', `no ${this.first} within the first ${HEAD_LIMIT} bytes`)
  }

  // The body walker's byte plumbing: a value of `want` more bytes being read into `val`, or `skip`
  // more bytes being passed over by counting. Each returns how many bytes of `b` from `i` it took.

  /** Starts reading `keep` bytes of an element of `size` payload bytes into `val`; the rest is skipped after. */
  startValue(kind, keep, size) {
    this.reading = kind
    this.valLen = 0
    this.skipAfter = size - keep
    this.want = keep
  }

  takeValue(b, i) {
    const take = Math.min(this.want, b.length - i)
    this.val.set(b.subarray(i, i + take), this.valLen)
    this.valLen += take
    this.want -= take
    this.pos += take
    return take
  }

  takeSkip(b, i) {
    const take = Math.min(this.skip, b.length - i)
    this.skip -= take
    this.pos += take
    return take
  }

  /**
   * The first media element starts at `headPos`: write the provisional header region, then walk
   * what is buffered after it. Returns both, the first bytes to write out.
   */
  beginBody() {
    this.inputDataStart = this.headPos
    const header = this.headerRegion(null)
    this.headerLength = header.length
    const rest = this.head.subarray(this.headPos, this.headLen)
    this.head = null
    this.state = 'body'
    this.pos = this.inputDataStart
    this.feedBody(rest)
    return concat([header, rest])
  }
}

/**
 * Finalise a whole recording held in a Blob with `finaliser`, reading it in slices of `sliceBytes`:
 * a new Blob of the same type made of the final header, the input after its header region (sliced,
 * not copied) and the tail. `blob` itself when the finaliser cannot follow it or it is already final.
 */
export async function finaliseBlob(blob, finaliser, sliceBytes) {
  let final
  try {
    for (let at = 0; at < blob.size; at += sliceBytes)
      finaliser.push(new Uint8Array(await blob.slice(at, Math.min(at + sliceBytes, blob.size)).arrayBuffer()))
    final = finaliser.finish()
  } catch (err) {
    if (err instanceof FinaliseError) return blob
    throw err
  }
  if (final.alreadyFinal) return blob
  return new Blob([final.header, blob.slice(final.inputDataStart), final.tail], { type: blob.type })
}
