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

import { concat, finaliseBlob, HEAD_LIMIT } from './base.mjs'
import {
  MAX_REFERENCES,
  SIDX_FIXED,
  SIDX_REFERENCE,
  FREE_HEADER,
  HEADER_RESERVE,
  TFHD_KEEP,
  Mp4FinaliseError,
  fail,
  u32,
  u64,
  typeOf,
  putU32,
  putU64,
  readBoxHeader,
  printable,
  boxes,
  box,
  durationField,
} from './mp4-box.mjs'
import { Mp4Walker } from './mp4-walk.mjs'

export { HEADER_RESERVE, MAX_REFERENCES, Mp4FinaliseError, readBoxHeader, repairRepeatedMoof } from './mp4-box.mjs'

export { HEAD_LIMIT }
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
export function createMp4Finaliser() {
  return new Mp4Finaliser()
}

class Mp4Finaliser extends Mp4Walker {
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
