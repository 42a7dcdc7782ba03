// The MP4 finaliser's walk over the fragments after the header region (client/finalise/mp4.mjs
// holds the rest): top-level boxes, the moof/traf inside them, the few values it keeps (tfhd,
// tfdt, each trun record's duration), and every mdat skipped by counting. A base class: the
// finaliser's constructor sets the fields it walks with.
import { StreamFinaliser } from './base.mjs'
import { MAX_REFERENCES, TFHD_KEEP, fail, u32, u64, readBoxHeader, printable, boxes, box } from './mp4-box.mjs'

/** The body walk of `Mp4Finaliser`; `feedBody(bytes)` is what `StreamFinaliser.push` calls. */
export class Mp4Walker extends StreamFinaliser {
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
}
