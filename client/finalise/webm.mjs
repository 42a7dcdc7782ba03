// Make a MediaRecorder WebM seekable: a known Segment size, a Duration in Info, a SeekHead and Cues.
// Plain JS (browsers and Node), no dependencies. docs/webm-finalise.md explains the layout, why the
// clusters keep their unknown sizes, and how a recorder that uploads parts while recording uses it.
//
// The finaliser never holds audio: it reads each element header, the few bytes of each block it
// needs (track, time, Opus TOC), and skips the rest by counting. Its memory is the header region (at
// most HEAD_LIMIT) and two numbers per cluster. Every step consumes input, so work is bounded by the
// bytes fed. A file it cannot follow makes it throw a WebmFinaliseError with a code;
// `finaliseWebm(blob)` turns that into "return the blob unchanged".

import { concat, finaliseBlob, HEAD_LIMIT, StreamFinaliser } from './base.mjs'
import {
  ID,
  LEVEL1,
  BLOCK_KEEP,
  SEEK_HEAD_BYTES,
  DURATION_BYTES,
  VOID_HEADER,
  fail,
  vintLength,
  readElementHeader,
  children,
  readUint,
  size8,
  idBytes,
  element,
  opusPacketNs,
  float64Element,
  seekHeadElement,
  cuesElement,
  HEADER_RESERVE,
} from './ebml.mjs'

export { HEADER_RESERVE, opusPacketNs, readElementHeader, WebmFinaliseError } from './ebml.mjs'

/** The most CuePoints kept (two numbers each): 65 536 clusters is 18 h of MediaRecorder audio. */
export const MAX_CUE_POINTS = 65536
export { HEAD_LIMIT }

// --- the finaliser -----------------------------------------------------------------------------

/**
 * An incremental finaliser, fed a WebM recording's bytes in order. See docs/webm-finalise.md.
 *
 * `push(chunk)` returns the bytes to write out for it: nothing while the header region is still
 * incomplete, then once the provisional header region (exactly `headerLength` bytes) followed by
 * the recording from its first Cluster, then each later chunk unchanged. `finish()` returns the
 * final header region (the same length) and the Cues to append.
 */
export function createWebmFinaliser() {
  return new WebmFinaliser()
}

class WebmFinaliser extends StreamFinaliser {
  constructor() {
    super(fail, 'Cluster')
    // Body parser: partial element header, a value being read, a payload being skipped.
    this.hdr = new Uint8Array(12)
    this.hdrLen = 0
    this.want = 0
    this.val = new Uint8Array(BLOCK_KEEP)
    this.valLen = 0
    this.reading = 0
    this.skipAfter = 0
    this.skip = 0
    // Open masters below the Segment: { id, end } (end null = unknown size). At most Cluster > BlockGroup.
    this.open = []
    this.segmentEnd = null
    // Bookkeeping: cluster offsets (input) and timecodes, the audio track's last blocks.
    this.clusterAt = []
    this.clusterTime = []
    // Cues for every `stride`-th cluster: when MAX_CUE_POINTS are kept, every other one goes and the
    // stride doubles, so a file of many tiny clusters costs bounded memory (seeks stay possible, a
    // little coarser).
    this.stride = 1
    this.clusterCount = 0
    this.cueThis = false
    this.currentTime = null
    this.lastTime = null
    this.prevTime = null
    this.lastFrameNs = null
    this.cuesSeen = false
    // Input bytes up to the end of the last whole element (see `completeBytes`).
    this.wholeTo = null
  }

  /**
   * The longest prefix of the input that `finish()` accepts: it ends where the last whole element
   * (a block, a Cluster's header, …) ends. Null before the first Cluster. MediaRecorder cuts its
   * chunks where its timer fires, not between elements, so a recording that a crash or a reload
   * ended is finalised up to here (a fresh finaliser fed exactly these bytes).
   */
  get completeBytes() {
    return this.wholeTo
  }

  // The header region: buffered whole (≤ HEAD_LIMIT) until the first Cluster's ID.
  readHead() {
    const b = this.head
    const end = this.headLen
    if (!this.ebml) {
      const magic = [0x1a, 0x45, 0xdf, 0xa3]
      for (let i = 0; i < Math.min(4, end); i++) if (b[i] !== magic[i]) fail('not_webm', 'not an EBML file')
      const h = readElementHeader(b, 0, end)
      if (!h) return this.headRoom()
      if (h.size === null || h.size > 4096) fail('malformed', 'EBML header of unknown or excessive size')
      if (h.headerLength + h.size > end) return this.headRoom()
      const docType = children(b, h.headerLength, h.headerLength + h.size).find((c) => c.id === ID.DOCTYPE)
      const name = docType ? String.fromCharCode(...b.subarray(docType.dataStart, docType.end)) : ''
      if (name !== 'webm' && name !== 'matroska') fail('not_webm', `EBML DocType ${JSON.stringify(name)}`)
      this.ebml = b.slice(0, h.headerLength + h.size)
      this.headPos = this.ebml.length
    }
    if (this.segmentDataStart === undefined) {
      const h = readElementHeader(b, this.headPos, end)
      if (!h) return this.headRoom()
      if (h.id !== ID.SEGMENT) fail('malformed', 'the EBML header is not followed by a Segment')
      this.headPos += h.headerLength
      this.segmentDataStart = this.headPos
      this.segmentEnd = h.size === null ? null : this.headPos + h.size
      this.kept = []
      this.infoKept = null
      this.scale = 1000000
      this.hadDuration = false
      this.track = null
    }
    for (;;) {
      const h = readElementHeader(b, this.headPos, end)
      if (!h) return this.headRoom()
      if (h.id === ID.CLUSTER) return this.startBody()
      if (h.size === null) fail('malformed', `unknown-size element 0x${h.id.toString(16)} before the first Cluster`)
      const elementEnd = this.headPos + h.headerLength + h.size
      if (elementEnd > HEAD_LIMIT) this.headTooLong()
      if (elementEnd > end) return this.headRoom()
      this.headElement(h.id, this.headPos, this.headPos + h.headerLength, elementEnd)
      this.headPos = elementEnd
    }
  }

  // One complete element before the first Cluster: Info and Tracks are read; the stale SeekHead,
  // Cues and Voids are dropped (their positions would be wrong); anything else is kept as it is.
  headElement(id, start, dataStart, end) {
    const b = this.head
    if (id === ID.INFO) {
      const kept = []
      for (const c of children(b, dataStart, end)) {
        if (c.id === ID.TIMECODE_SCALE) this.scale = readUint(b, c.dataStart, c.end)
        if (c.id === ID.DURATION) this.hadDuration = true
        // Info is rewritten, so a CRC-32 of it would be wrong; Duration is ours to write.
        if (c.id !== ID.DURATION && c.id !== ID.CRC32 && c.id !== ID.VOID) kept.push(b.slice(c.start, c.end))
      }
      if (!(this.scale > 0)) fail('malformed', 'TimecodeScale is 0')
      this.infoKept = concat(kept)
    } else if (id === ID.TRACKS) {
      for (const entry of children(b, dataStart, end)) {
        if (entry.id !== ID.TRACK_ENTRY) continue
        let number = null
        let type = null
        let codec = ''
        for (const c of children(b, entry.dataStart, entry.end)) {
          if (c.id === ID.TRACK_NUMBER) number = readUint(b, c.dataStart, c.end)
          if (c.id === ID.TRACK_TYPE) type = readUint(b, c.dataStart, c.end)
          if (c.id === ID.CODEC_ID)
            codec = String.fromCharCode(...b.subarray(c.dataStart, Math.min(c.end, c.dataStart + 32)))
        }
        // The first audio track (type 2); MediaRecorder's audio-only files have just that one.
        if (number !== null && number > 0 && (this.track === null || (type === 2 && this.track.type !== 2)))
          this.track = { number, type, opus: codec === 'A_OPUS' }
      }
      this.kept.push(b.slice(start, end))
    } else if (id === ID.SEEK_HEAD) {
      for (const seek of children(b, dataStart, end)) {
        if (seek.id !== ID.SEEK) continue
        const sid = children(b, seek.dataStart, seek.end).find((c) => c.id === ID.SEEK_ID)
        if (sid && sid.end - sid.dataStart === 4 && readUint(b, sid.dataStart, sid.end) === ID.CUES)
          this.cuesSeen = true
      }
    } else if (id === ID.CUES) {
      this.cuesSeen = true
    } else if (id !== ID.VOID && id !== ID.CRC32) {
      this.kept.push(b.slice(start, end))
    }
  }

  startBody() {
    if (this.infoKept === null) fail('malformed', 'no Info before the first Cluster')
    if (this.track === null) fail('no_audio', 'no track before the first Cluster')
    this.wholeTo = this.headPos
    return this.beginBody()
  }

  /**
   * The header region: EBML header, Segment header (8-byte size), [SeekHead], Info, Tracks and the
   * other kept elements, then a Void filling it up. Provisional (`final` null): unknown Segment size,
   * no SeekHead, no Duration, a Void of HEADER_RESERVE bytes. Final: both written, the Void shorter
   * by exactly what they take.
   */
  headerRegion(final) {
    const infoPayload = final ? concat([this.infoKept, float64Element(ID.DURATION, final.duration)]) : this.infoKept
    const info = concat([idBytes(ID.INFO), size8(infoPayload.length), infoPayload])
    const rest = concat(this.kept)
    const segmentHeader = [
      ...idBytes(ID.SEGMENT),
      ...(final ? size8(final.segmentSize) : [0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
    ]
    const seekHead = final
      ? seekHeadElement([
          [ID.INFO, SEEK_HEAD_BYTES],
          [ID.TRACKS, SEEK_HEAD_BYTES + info.length + this.tracksOffset()],
          [ID.CUES, final.cuesPosition],
        ])
      : new Uint8Array(0)
    const used = seekHead.length + (final ? DURATION_BYTES : 0)
    const voidLength = HEADER_RESERVE - used
    const pad = new Uint8Array(voidLength)
    pad.set([ID.VOID, ...size8(voidLength - VOID_HEADER)])
    return concat([this.ebml, segmentHeader, seekHead, info, rest, pad])
  }

  /** Where Tracks starts within the kept elements (they follow Info). */
  tracksOffset() {
    let at = 0
    for (const k of this.kept) {
      if (readElementHeader(k, 0).id === ID.TRACKS) return at
      at += k.length
    }
    return 0
  }

  // The streaming walk over the Segment's children after the header region.
  feedBody(b) {
    let i = 0
    const n = b.length
    while (i < n) {
      if (this.want > 0) {
        i += this.takeValue(b, i)
        if (this.want === 0) {
          this.value(this.reading, this.val.subarray(0, this.valLen))
          this.skip = this.skipAfter
          this.markWhole()
        }
        continue
      }
      if (this.skip > 0) {
        i += this.takeSkip(b, i)
        this.markWhole()
        continue
      }
      this.hdr[this.hdrLen++] = b[i++]
      this.pos++
      const h = readElementHeader(this.hdr, 0, this.hdrLen)
      if (h) {
        this.hdrLen = 0
        this.element(h.id, h.size, this.pos - h.headerLength)
        this.markWhole()
      } else if (this.hdrLen >= 12) fail('malformed', 'element header longer than 12 bytes')
    }
  }

  /** Between elements, and inside no element of known size: a cut here finishes. */
  markWhole() {
    if (this.hdrLen > 0 || this.want > 0 || this.skip > 0) return
    for (const o of this.open) if (o.end !== null && o.end > this.pos) return
    this.wholeTo = this.pos
  }

  element(id, size, start) {
    // Close the masters that ended here; an unknown-size Cluster ends at the next top-level element.
    while (this.open.length && this.open.at(-1).end !== null && this.open.at(-1).end <= start) this.open.pop()
    if (LEVEL1.has(id)) while (this.open.length && this.open.at(-1).end === null) this.open.pop()
    if (id === ID.EBML || id === ID.SEGMENT)
      fail('malformed', `a second ${id === ID.EBML ? 'EBML header' : 'Segment'} at byte ${start}`)
    const top = this.open.at(-1)
    const parentEnd = top ? top.end : this.segmentEnd
    if (size === null && id !== ID.CLUSTER)
      fail('malformed', `unknown-size element 0x${id.toString(16)} at byte ${start}`)
    const end = size === null ? null : this.pos + size
    if (parentEnd !== null && (end === null ? this.pos > parentEnd : end > parentEnd))
      fail('malformed', `element 0x${id.toString(16)} at byte ${start} overruns its parent`)
    const where = top ? top.id : ID.SEGMENT
    if (where === ID.SEGMENT) {
      if (id === ID.CLUSTER) {
        if (this.clusterAt.length >= MAX_CUE_POINTS) {
          this.clusterAt = this.clusterAt.filter((_, i) => i % 2 === 0)
          this.clusterTime = this.clusterTime.filter((_, i) => i % 2 === 0)
          this.stride *= 2
        }
        this.cueThis = this.clusterCount % this.stride === 0
        this.clusterCount++
        this.currentTime = null
        if (this.cueThis) {
          this.clusterAt.push(start)
          this.clusterTime.push(null)
        }
        this.open.push({ id, end })
        return
      }
      if (id === ID.CUES) this.cuesSeen = true
      this.skip = size
    } else if (where === ID.CLUSTER) {
      if (id === ID.BLOCK_GROUP) {
        this.open.push({ id, end })
      } else if (id === ID.CLUSTER_TIMECODE) {
        if (size > 8) fail('malformed', `Cluster Timecode of ${size} bytes at byte ${start}`)
        this.read(id, size, size)
      } else if (id === ID.SIMPLE_BLOCK) {
        this.block(id, size, start)
      } else this.skip = size
    } else if (id === ID.BLOCK) {
      this.block(id, size, start)
    } else this.skip = size
  }

  block(id, size, start) {
    if (size < 4) fail('malformed', `a block of ${size} bytes at byte ${start}`)
    this.read(id, Math.min(size, BLOCK_KEEP), size)
  }

  read(id, keep, size) {
    this.startValue(id, keep, size)
    if (keep === 0) {
      this.value(id, this.val.subarray(0, 0))
      this.skip = this.skipAfter
    }
  }

  value(id, v) {
    if (id === ID.CLUSTER_TIMECODE) {
      this.currentTime = readUint(v, 0, v.length)
      if (this.cueThis) this.clusterTime[this.clusterTime.length - 1] = this.currentTime
      return
    }
    // A block: track number (vint), signed 16-bit time relative to the cluster, flags, payload.
    const trackLen = vintLength(v[0])
    if (trackLen === 0 || trackLen + 3 > v.length) fail('malformed', 'a block with a malformed track number')
    const track = readUint(v, 0, trackLen) - 2 ** (7 * trackLen)
    if (track !== this.track.number) return
    const base = this.currentTime
    if (base === null || base === undefined) return // no Cluster Timecode yet: cannot be placed
    const rel = (((v[trackLen] << 8) | v[trackLen + 1]) << 16) >> 16
    const time = base + rel
    const laced = (v[trackLen + 2] & 0x06) !== 0
    const payload = trackLen + 3
    this.prevTime = this.lastTime
    this.lastTime = time
    this.lastFrameNs = this.track.opus && !laced && payload < v.length ? opusPacketNs(v[payload], v[payload + 1]) : null
  }

  /**
   * Ends the recording (`finish()`). Returns `{ header, tail, durationMs, clusters, inputDataStart,
   * alreadyFinal }`: `header` replaces the first `headerLength` bytes of the output, `tail` (the Cues)
   * is appended.
   */
  conclude() {
    if (this.state === 'head') {
      if (this.headLen === 0) fail('not_webm', 'no bytes')
      fail('truncated', 'the recording ends before its first Cluster')
    }
    if (this.hdrLen > 0 || this.want > 0 || this.skip > 0)
      fail('truncated', `the recording ends inside an element (byte ${this.pos})`)
    for (const o of this.open)
      if (o.end !== null && o.end > this.pos)
        fail('truncated', `the recording ends inside a Cluster (byte ${this.pos})`)
    if (this.lastTime === null) fail('no_audio', 'no block of the audio track')
    const stepNs = this.prevTime === null ? 0 : (this.lastTime - this.prevTime) * this.scale
    const frameNs = this.lastFrameNs ?? stepNs
    const endNs = this.lastTime * this.scale + frameNs
    if (!(endNs >= 0)) fail('malformed', 'the last block is before time 0')
    // A Cluster's position in the output is relative to the Segment's data (after EBML and its 12-byte header).
    const shift = this.headerLength - this.inputDataStart - (this.ebml.length + 12)
    const { tail, clusters } = cuesElement(this.clusterAt, this.clusterTime, shift, this.track.number)
    const segmentData = this.headerLength - (this.ebml.length + 12) + (this.bytesIn - this.inputDataStart)
    const header = this.headerRegion({
      duration: endNs / this.scale,
      segmentSize: segmentData + tail.length,
      cuesPosition: segmentData,
    })
    if (header.length !== this.headerLength) fail('state', 'header region changed length') // cannot happen
    return {
      header,
      tail,
      durationMs: endNs / 1e6,
      clusters,
      inputDataStart: this.inputDataStart,
      alreadyFinal: this.hadDuration && this.cuesSeen,
    }
  }
}

/**
 * Finalise a whole recording held in a Blob. Reads it in slices of `sliceBytes` (1 MiB), never
 * whole, and returns a new Blob of the same type made of the final header, the input's clusters
 * (sliced, not copied) and the Cues. Returns `blob` itself when it is not WebM, is already
 * finalised (Duration and Cues), or cannot be followed (malformed, truncated, no audio).
 */
export async function finaliseWebm(blob, { sliceBytes = 1024 * 1024 } = {}) {
  return finaliseBlob(blob, createWebmFinaliser(), sliceBytes)
}
