// Make a MediaRecorder fragmented MP4 seekable: durations in mvhd/tkhd/mdhd (and mehd if present)
// and a segment index (`sidx`) in front of the first fragment. Plain JS (browsers and Node), no
// dependencies. docs/mp4-finalise.md says what Chromium needed (measured) and how a recorder that
// uploads parts while recording uses it.
//
// The finaliser never holds audio: it keeps the header region (ftyp, moov: at most HEAD_LIMIT),
// reads the few small boxes of each fragment it needs (tfhd, tfdt, and the duration of each trun
// record), and skips every mdat by counting. Its bookkeeping is at most 2 × MAX_REFERENCES fragment
// positions, however long the recording. Every step consumes input, so work is bounded by the bytes
// fed. A file it cannot follow makes it throw an Mp4FinaliseError with a code; `finaliseMp4(blob)`
// turns that into "return the blob unchanged".

import { concat, failWith, FinaliseError, finaliseBlob, HEAD_LIMIT, StreamFinaliser } from './finaliser.mjs'

export { HEAD_LIMIT }
/** No box claims more than this (1 TiB); larger sizes are refused, not skipped. */
const SIZE_LIMIT = 2 ** 40
/**
 * The most references the sidx holds. A longer recording gets references that each cover several
 * fragments (a seek then reads on from the start of its group): the header region stays one size.
 */
export const MAX_REFERENCES = 1024
/** A version-1 sidx: box header 8, version/flags 4, reference ID 4, timescale 4, earliest time 8,
 * first offset 8, reserved 2, reference count 2; then 12 bytes a reference. */
const SIDX_FIXED = 40
const SIDX_REFERENCE = 12
const FREE_HEADER = 8
/** What the provisional header keeps free: a `free` box as long as the largest sidx plus its own header. */
export const HEADER_RESERVE = FREE_HEADER + SIDX_FIXED + SIDX_REFERENCE * MAX_REFERENCES
/** tfhd: version/flags, track ID, base data offset (8), description index, default duration. */
const TFHD_KEEP = 24

/** Why a file could not be finalised: `not_mp4`, `unsupported`, `malformed`, `truncated`, `no_audio`, `too_large`, `state`. */
export class Mp4FinaliseError extends FinaliseError {
  name = 'Mp4FinaliseError'
}
const fail = failWith(Mp4FinaliseError)

// --- box primitives ----------------------------------------------------------------------------

const u32 = (b, at) => ((b[at] << 24) >>> 0) + (b[at + 1] << 16) + (b[at + 2] << 8) + b[at + 3]
const u64 = (b, at) => u32(b, at) * 2 ** 32 + u32(b, at + 4)
const typeOf = (b, at) => String.fromCharCode(b[at], b[at + 1], b[at + 2], b[at + 3])
function putU32(b, at, v) {
  b[at] = (v >>> 24) & 0xff
  b[at + 1] = (v >>> 16) & 0xff
  b[at + 2] = (v >>> 8) & 0xff
  b[at + 3] = v & 0xff
}
function putU64(b, at, v) {
  putU32(b, at, Math.floor(v / 2 ** 32))
  putU32(b, at + 4, v % 2 ** 32)
}

/**
 * A box header at `at` in `b`: `{ type, size (null = to the end), headerLength }`, or null when `b`
 * ends first. Throws on a size below the header's own length or over SIZE_LIMIT.
 */
export function readBoxHeader(b, at, end = b.length) {
  if (at + 8 > end) return null
  const size32 = u32(b, at)
  const type = typeOf(b, at + 4)
  if (size32 === 0) return { type, size: null, headerLength: 8 }
  if (size32 !== 1) {
    if (size32 < 8) fail('malformed', `box '${printable(type)}' of ${size32} bytes at byte ${at}`)
    return { type, size: size32, headerLength: 8 }
  }
  if (at + 16 > end) return null
  const size = u64(b, at + 8)
  if (size > SIZE_LIMIT) fail('too_large', `box '${printable(type)}' claims ${size} bytes`)
  if (size < 16) fail('malformed', `box '${printable(type)}' of ${size} bytes at byte ${at}`)
  return { type, size, headerLength: 16 }
}

const printable = (type) => type.replace(/[^\x20-\x7e]/g, '?')

/** The child boxes of a box held in memory: `[{ type, start, dataStart, end }]`. */
function boxes(b, start, end) {
  const out = []
  let at = start
  while (at < end) {
    const h = readBoxHeader(b, at, end)
    if (!h) fail('malformed', `box header cut off at byte ${at}`)
    if (h.size === null) fail('malformed', `box '${printable(h.type)}' of size 0 inside the header`)
    if (at + h.size > end) fail('malformed', `box '${printable(h.type)}' overruns its parent`)
    out.push({ type: h.type, start: at, dataStart: at + h.headerLength, end: at + h.size })
    at += h.size
  }
  return out
}

function box(type, payloadLength) {
  const out = new Uint8Array(8 + payloadLength)
  putU32(out, 0, out.length)
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i)
  return out
}

/**
 * Where a full box's duration field is, from its version: `{ at, wide }` (wide: 8 bytes). mvhd and
 * mdhd: created, modified, timescale, duration; tkhd: created, modified, track ID, reserved, duration.
 */
function durationField(b, c) {
  const v1 = b[c.dataStart] === 1
  const rel = c.type === 'tkhd' ? (v1 ? 28 : 20) : v1 ? 24 : 16
  const need = rel + (v1 ? 8 : 4)
  if (c.end - c.dataStart < need) fail('malformed', `'${c.type}' shorter than its version's fields`)
  return { at: c.dataStart + rel, wide: v1 }
}

// --- the finaliser -----------------------------------------------------------------------------

/**
 * An incremental finaliser, fed a fragmented MP4 recording's bytes in order. See docs/mp4-finalise.md.
 *
 * `push(chunk)` returns the bytes to write out for it: nothing while the header region is still
 * incomplete, then once the provisional header region (exactly `headerLength` bytes: ftyp, moov and
 * a reserved `free` box) followed by the recording from its first `moof`, then each later chunk
 * unchanged. `finish()` returns the final header region (the same length: durations written, a sidx
 * in the reserved space) and an empty tail.
 */
/**
 * A MediaRecorder chunk with WebKit's repeated moof repaired in place: where a top-level `moof` is
 * followed by the same bytes again (WebKit writes the moof of the fragment it ends with at `stop()`
 * twice), the first becomes a `free` box of the same length. Returns `bytes` (changed in place when
 * repaired). A chunk that is not whole boxes is left as it is.
 */
export function repairRepeatedMoof(bytes) {
  let at = 0
  let previous = null
  while (at + 8 <= bytes.length) {
    let h
    try {
      h = readBoxHeader(bytes, at)
    } catch {
      return bytes
    }
    if (!h || h.size === null || h.size < 8 || at + h.size > bytes.length) return bytes
    if (h.type === 'moof' && previous?.type === 'moof' && previous.size === h.size) {
      let same = true
      for (let i = 0; i < h.size && same; i++) same = bytes[previous.at + i] === bytes[at + i]
      if (same) bytes.set([0x66, 0x72, 0x65, 0x65], previous.at + 4) // 'free'
    }
    previous = { type: h.type, size: h.size, at }
    at += h.size
  }
  return bytes
}

export function createMp4Finaliser() {
  return new Mp4Finaliser()
}

class Mp4Finaliser extends StreamFinaliser {
  constructor() {
    super(fail, 'moof')
    this.kept = []
    this.moov = null
    this.hadSidx = false
    // Body walker: a partial box header, a value being read, a payload being skipped.
    this.hdr = new Uint8Array(16)
    this.hdrLen = 0
    this.want = 0
    this.val = new Uint8Array(TFHD_KEEP)
    this.valLen = 0
    this.reading = null
    this.skipAfter = 0
    this.skip = 0
    this.toEnd = false
    // A trun being streamed: records left, their length, whether each starts with a duration.
    this.run = null
    // Open boxes: moof and traf (end known). Depth is at most two.
    this.open = []
    // Fragments: count, the sampled positions `{ offset, time }` (every `stride`-th fragment), the
    // fragment being read, and the audio track's timeline (media units).
    this.fragments = 0
    this.stride = 1
    this.entries = []
    this.frag = null
    this.traf = null
    this.running = 0
    this.firstStart = null
    this.trackEnd = null
    this.cleanAt = null
  }

  /** Where the input can be cut and still finish: after the last whole fragment (null: nowhere yet). */
  get cleanEnd() {
    return this.cleanAt
  }

  /** The same as `cleanEnd`, under the WebM finaliser's name (the recorder drives both alike). */
  get completeBytes() {
    return this.cleanEnd
  }

  // The header region: buffered whole (≤ HEAD_LIMIT) until the first moof's header.
  readHead() {
    const b = this.head
    const end = this.headLen
    if (this.headPos === 0 && end >= 8 && typeOf(b, 4) !== 'ftyp') fail('not_mp4', 'the file does not start with ftyp')
    for (;;) {
      const h = readBoxHeader(b, this.headPos, end)
      if (!h) return this.headRoom()
      if (this.headPos === 0 && h.type !== 'ftyp') fail('not_mp4', 'the file does not start with ftyp')
      if (h.type === 'moof') return this.startBody()
      if (h.type === 'mdat') fail('unsupported', 'media data before any moof: not a fragmented recording')
      if (h.size === null) fail('malformed', `box '${printable(h.type)}' of size 0 before the first moof`)
      const boxEnd = this.headPos + h.size
      if (boxEnd > HEAD_LIMIT) this.headTooLong()
      if (boxEnd > end) return this.headRoom()
      this.headBox(h.type, this.headPos, this.headPos + h.headerLength, boxEnd)
      this.headPos = boxEnd
    }
  }

  // One whole box before the first moof: moov is read; an old sidx and padding are dropped (their
  // positions would be wrong); anything else is kept as it is.
  headBox(type, start, dataStart, end) {
    if (type === 'sidx') this.hadSidx = true
    if (type === 'sidx' || type === 'free' || type === 'skip') return
    if (type === 'moov') {
      if (this.moov) fail('malformed', 'a second moov')
      this.moov = this.readMoov(dataStart, end, this.keptLength())
    }
    this.kept.push(this.head.slice(start, end))
  }

  keptLength() {
    return this.kept.reduce((n, k) => n + k.length, 0)
  }

  /** The moov's fields the finaliser rewrites (positions in the kept bytes) and the audio track. */
  readMoov(start, end, base) {
    const b = this.head
    const shift = (f) => ({ at: f.at - this.headPos + base, wide: f.wide })
    const moov = { mvhd: null, movieScale: 0, hadDuration: false, track: null, mehd: null, trex: new Map() }
    for (const c of boxes(b, start, end)) {
      if (c.type === 'mvhd') {
        const f = durationField(b, c)
        moov.movieScale = u32(b, f.at - 4)
        const d = f.wide ? u64(b, f.at) : u32(b, f.at)
        moov.hadDuration = d !== 0 && d !== (f.wide ? 2 ** 64 - 1 : 2 ** 32 - 1)
        moov.mvhd = shift(f)
      } else if (c.type === 'mvex') {
        for (const m of boxes(b, c.dataStart, c.end)) {
          if (m.type === 'trex' && m.end - m.dataStart >= 24)
            moov.trex.set(u32(b, m.dataStart + 4), { duration: u32(b, m.dataStart + 12) })
          if (m.type === 'mehd' && m.end - m.dataStart >= 8) {
            const wide = b[m.dataStart] === 1
            if (!wide || m.end - m.dataStart >= 12) moov.mehd = shift({ at: m.dataStart + 4, wide })
          }
        }
      } else if (c.type === 'trak' && moov.track === null) {
        let tkhd = null
        let mdhd = null
        let sound = false
        for (const t of boxes(b, c.dataStart, c.end)) {
          if (t.type === 'tkhd') tkhd = t
          if (t.type !== 'mdia') continue
          for (const m of boxes(b, t.dataStart, t.end)) {
            if (m.type === 'mdhd') mdhd = m
            if (m.type === 'hdlr' && m.end - m.dataStart >= 12 && typeOf(b, m.dataStart + 8) === 'soun') sound = true
          }
        }
        // The first sound track: MediaRecorder's audio-only files have just that one.
        if (!sound) continue
        if (!tkhd || !mdhd) fail('malformed', 'a sound track without tkhd or mdhd')
        const tk = durationField(b, tkhd)
        const md = durationField(b, mdhd)
        const id = u32(b, tk.at - 8) // track ID, then 4 reserved bytes, then the duration
        const scale = u32(b, md.at - 4)
        if (!(scale > 0)) fail('malformed', 'the sound track has timescale 0')
        moov.track = { id, scale, tkhd: shift(tk), mdhd: shift(md) }
      }
    }
    if (!moov.mvhd) fail('malformed', 'moov without mvhd')
    if (!(moov.movieScale > 0)) fail('malformed', 'mvhd has timescale 0')
    return moov
  }

  startBody() {
    if (!this.moov) fail('malformed', 'no moov before the first moof')
    if (!this.moov.track) fail('no_audio', 'no sound track in moov')
    this.track = this.moov.track
    this.defaultDuration = this.moov.trex.get(this.track.id)?.duration ?? 0
    this.keptBytes = concat(this.kept)
    this.kept = null
    return this.beginBody()
  }

  /**
   * The header region: the kept boxes, then a `free` box and (final) the sidx, always HEADER_RESERVE
   * bytes together. The sidx is last, right before the first moof: Chromium ignores a sidx whose
   * first_offset skips padding (measured), so the padding goes in front of it.
   */
  headerRegion(final) {
    const kept = final ? this.keptBytes.slice() : this.keptBytes
    let sidx = new Uint8Array(0)
    if (final) {
      const m = this.moov
      const movie = Math.round((final.units * m.movieScale) / this.track.scale)
      write(kept, m.mvhd, movie)
      write(kept, this.track.tkhd, movie)
      write(kept, this.track.mdhd, final.units)
      if (m.mehd) write(kept, m.mehd, movie)
      sidx = final.sidx
    }
    const pad = box('free', HEADER_RESERVE - FREE_HEADER - sidx.length)
    return concat([kept, pad, sidx])
  }

  // The streaming walk over the top-level boxes after the header region.
  feedBody(b) {
    let i = 0
    const n = b.length
    while (i < n) {
      if (this.toEnd) {
        this.pos += n - i
        return
      }
      if (this.want > 0) {
        i += this.takeValue(b, i)
        if (this.want === 0) {
          this.value(this.val.subarray(0, this.valLen))
          this.skip = this.skipAfter
          if (this.skip === 0 && this.want === 0) this.boundary()
        }
        continue
      }
      if (this.skip > 0) {
        i += this.takeSkip(b, i)
        if (this.skip === 0) this.boundary()
        continue
      }
      this.hdr[this.hdrLen++] = b[i++]
      this.pos++
      if (this.hdrLen < 8) continue
      const h = readBoxHeader(this.hdr, 0, this.hdrLen)
      if (h) {
        this.hdrLen = 0
        this.box(h.type, h.size, this.pos - h.headerLength, h.headerLength)
      }
    }
  }

  /** A box ended at `pos`: close what ended with it; a whole top-level box is a clean cut. */
  boundary() {
    this.closeTo(this.pos)
    if (this.open.length === 0 && !this.frag?.waiting) this.cleanAt = this.pos
  }

  closeTo(at) {
    while (this.open.length && this.open.at(-1).end <= at) {
      const o = this.open.pop()
      if (o.type === 'traf') this.endTraf()
      else if (o.type === 'moof') this.frag.waiting = true
    }
  }

  box(type, size, start, headerLength) {
    this.closeTo(start)
    const top = this.open.at(-1)
    if (size === null) {
      // Size 0: to the end of the file. Only a last mdat may do that.
      if (top || type !== 'mdat') fail('malformed', `box '${printable(type)}' of size 0 at byte ${start}`)
      this.mdatDone()
      this.toEnd = true
      return
    }
    const end = start + size
    if (top && end > top.end) fail('malformed', `box '${printable(type)}' at byte ${start} overruns its parent`)
    const payload = size - headerLength
    const where = top ? top.type : null
    if (where === null) {
      if (type === 'moof') {
        if (this.frag?.waiting) {
          // WebKit writes the moof of the fragment it ends with at stop() twice, the same bytes:
          // the first (without its mdat) counts nothing. Any other moof without its mdat is refused.
          if (this.frag.size !== size) fail('malformed', `a moof without its mdat before byte ${start}`)
          if (this.entries.at(-1) === this.frag) this.entries.pop()
          this.fragments--
        }
        this.startFragment(start, size)
        return this.enter(type, end)
      }
      if (type === 'mdat') this.mdatDone()
      else if (type === 'moov' || type === 'ftyp') fail('malformed', `a second '${type}' at byte ${start}`)
      return this.skipPayload(payload)
    }
    if (where === 'moof' && type === 'traf') {
      this.traf = { audio: false, start: null, units: 0 }
      return this.enter(type, end)
    }
    if (where === 'traf') {
      if (type === 'tfhd') {
        if (payload < 8) fail('malformed', `a tfhd of ${payload} bytes at byte ${start}`)
        return this.startValue(type, Math.min(payload, TFHD_KEEP), payload)
      }
      if (type === 'tfdt' && this.traf.audio) {
        if (payload < 8) fail('malformed', `a tfdt of ${payload} bytes at byte ${start}`)
        return this.startValue(type, Math.min(payload, 12), payload)
      }
      if (type === 'trun' && this.traf.audio) {
        if (payload < 8) fail('malformed', `a trun of ${payload} bytes at byte ${start}`)
        this.run = { payload, stage: 'head' }
        return this.startValue(type, 8, payload)
      }
    }
    this.skipPayload(payload)
  }

  enter(type, end) {
    this.open.push({ type, end })
    if (this.pos >= end) this.boundary()
  }

  skipPayload(payload) {
    this.skip = payload
    if (payload === 0) this.boundary()
  }

  value(v) {
    const type = this.reading
    if (type === 'tfhd') {
      const flags = u32(v, 0) & 0xffffff
      // An absolute base data offset would be wrong once the header region changes length.
      if (flags & 0x1) fail('unsupported', 'a tfhd with an absolute base data offset')
      if (u32(v, 4) !== this.track.id) return
      this.traf.audio = true
      const at = 8 + (flags & 0x2 ? 4 : 0)
      if (flags & 0x8) {
        if (at + 4 > v.length) fail('malformed', 'a tfhd shorter than its fields')
        this.traf.duration = u32(v, at)
      }
    } else if (type === 'tfdt') {
      const wide = v[0] === 1
      if (wide && v.length < 12) fail('malformed', 'a version 1 tfdt shorter than 12 bytes')
      this.traf.start = wide ? u64(v, 4) : u32(v, 4)
      if (this.traf.start > Number.MAX_SAFE_INTEGER) fail('too_large', 'a tfdt beyond 2^53')
    } else if (type === 'trun') {
      const run = this.run
      if (run.stage === 'head') {
        // version/flags and sample count, then the optional data offset and first sample flags.
        const flags = u32(v, 0) & 0xffffff
        const count = u32(v, 4)
        const prefix = 8 + (flags & 0x1 ? 4 : 0) + (flags & 0x4 ? 4 : 0)
        const recLen = 4 * (((flags >> 8) & 1) + ((flags >> 9) & 1) + ((flags >> 10) & 1) + ((flags >> 11) & 1))
        if (prefix + count * recLen > run.payload)
          fail('malformed', `a trun of ${count} samples longer than its ${run.payload} bytes`)
        if (!(flags & 0x100)) {
          // Every sample takes the default duration: a product, not a loop over the count.
          this.traf.units += count * (this.traf.duration ?? this.defaultDuration)
          this.run = null
          this.skipAfter = run.payload - 8
          return
        }
        Object.assign(run, { left: count, recLen, rest: run.payload - prefix - count * recLen })
        if (prefix > 8) return this.want4(run, 'options', prefix - 8)
      } else if (run.stage === 'record') {
        // A record starts with its sample duration; the rest of it (size, flags, offset) is not needed.
        this.traf.units += u32(v, 0)
        run.left--
      }
      if (run.left > 0) return this.want4(run, 'record', run.recLen)
      this.run = null
      this.skipAfter = run.rest
    }
  }

  /** Reads the next `n` bytes (≤ 16) of the trun being streamed as its `stage`. */
  want4(run, stage, n) {
    run.stage = stage
    this.startValue('trun', n, n)
  }

  startFragment(start, size) {
    const index = this.fragments++
    this.frag = { offset: start, size, start: null, end: null, waiting: false }
    if (index % this.stride === 0) {
      this.entries.push(this.frag)
      // Never more than 2 × MAX_REFERENCES positions: keep every other one, twice the stride.
      if (this.entries.length >= 2 * MAX_REFERENCES) {
        this.entries = this.entries.filter((_, i) => i % 2 === 0)
        this.stride *= 2
      }
    }
  }

  endTraf() {
    const t = this.traf
    this.traf = null
    if (!t || !t.audio) return
    const f = this.frag
    const start = t.start ?? f.end ?? this.running
    if (f.start === null) f.start = start
    f.end = Math.max(f.end ?? 0, start + t.units)
  }

  /** The mdat after a moof: its fragment counts. */
  mdatDone() {
    const f = this.frag
    if (!f || !f.waiting) return
    f.waiting = false
    if (f.start === null) f.start = f.end = this.running
    if (this.firstStart === null && f.end > f.start) this.firstStart = f.start
    if (f.end > f.start || this.trackEnd === null) this.trackEnd = Math.max(this.trackEnd ?? 0, f.end)
    this.running = f.end
  }

  /**
   * Ends the recording (`finish()`). Returns `{ header, tail, durationMs, fragments, references,
   * inputDataStart, alreadyFinal }`: `header` replaces the first `headerLength` bytes of the output,
   * `tail` is empty (the index is in the header).
   */
  conclude() {
    if (this.state === 'head') {
      if (this.headLen === 0) fail('not_mp4', 'no bytes')
      if (this.headLen < 8) fail('truncated', 'the file ends inside its first box header')
      fail('truncated', 'the recording ends before its first moof')
    }
    if (!this.toEnd && (this.hdrLen > 0 || this.want > 0 || this.skip > 0 || this.open.length > 0))
      fail('truncated', `the recording ends inside a box (byte ${this.pos})`)
    if (this.frag?.waiting) fail('truncated', 'the recording ends with a moof without its mdat')
    if (this.firstStart === null) fail('no_audio', 'no sample of the sound track')
    // Fragments before the first one with audio start at the first audio time.
    let entries = this.entries.filter((e) => e.start !== null)
    while (entries.length > MAX_REFERENCES) entries = entries.filter((_, i) => i % 2 === 0)
    if (entries.length === 0 || entries[0].offset !== this.inputDataStart) entries.unshift(this.entries[0])
    const total = this.bytesIn
    const refs = []
    for (let i = 0; i < entries.length; i++) {
      const next = entries[i + 1]
      const t0 = i === 0 ? this.firstStart : entries[i].start
      const size = (next ? next.offset : total) - entries[i].offset
      const duration = (next ? next.start : this.trackEnd) - t0
      if (!(duration >= 0)) fail('malformed', 'fragment times go backwards')
      if (size >= 2 ** 31 || duration >= 2 ** 32)
        fail('too_large', 'a segment index reference over 2 GiB or 2^32 units')
      refs.push([size, duration])
    }
    const units = this.trackEnd - this.firstStart
    const sidx = box('sidx', SIDX_FIXED - 8 + SIDX_REFERENCE * refs.length)
    sidx[8] = 1 // version 1: 64-bit earliest time and first offset
    putU32(sidx, 12, this.track.id)
    putU32(sidx, 16, this.track.scale)
    putU64(sidx, 20, this.firstStart)
    putU64(sidx, 28, 0) // the first moof follows right after
    sidx[38] = refs.length >> 8
    sidx[39] = refs.length & 0xff
    refs.forEach(([size, duration], i) => {
      const at = SIDX_FIXED + SIDX_REFERENCE * i
      putU32(sidx, at, size) // reference type 0: media
      putU32(sidx, at + 4, duration)
      putU32(sidx, at + 8, 0x90000000) // starts with a SAP, type 1: every audio sample is one
    })
    const header = this.headerRegion({ units, sidx })
    if (header.length !== this.headerLength) fail('state', 'header region changed length') // cannot happen
    return {
      header,
      tail: new Uint8Array(0),
      durationMs: (units / this.track.scale) * 1000,
      fragments: this.fragments,
      references: refs.length,
      inputDataStart: this.inputDataStart,
      alreadyFinal: this.hadSidx && this.moov.hadDuration,
    }
  }
}

/** Writes a duration into a field of the kept bytes; a 32-bit field too small for it stays "unknown" (0). */
function write(b, field, value) {
  if (field.wide) putU64(b, field.at, value)
  else putU32(b, field.at, value < 2 ** 32 - 1 ? value : 0)
}

/**
 * Finalise a whole recording held in a Blob. Reads it in slices of `sliceBytes` (1 MiB), never
 * whole, and returns a new Blob of the same type made of the final header region and the input's
 * fragments (sliced, not copied). Returns `blob` itself when it is not a fragmented MP4, is already
 * finalised (a sidx and a duration), or cannot be followed (malformed, truncated, no audio).
 */
export async function finaliseMp4(blob, { sliceBytes = 1024 * 1024 } = {}) {
  return finaliseBlob(blob, createMp4Finaliser(), sliceBytes)
}
