// Make a MediaRecorder WebM seekable: a known Segment size, a Duration in Info, a SeekHead and Cues.
// Plain JS (browsers and Node), no dependencies. docs/webm-finalise.md explains the layout, why the
// clusters keep their unknown sizes, and how a recorder that uploads parts while recording uses it.
//
// The finaliser never holds audio: it reads each element header, the few bytes of each block it
// needs (track, time, Opus TOC), and skips the rest by counting. Its memory is the header region (at
// most HEAD_LIMIT) and two numbers per cluster. Every step consumes input, so work is bounded by the
// bytes fed. A file it cannot follow makes it throw a WebmFinaliseError with a code;
// `finaliseWebm(blob)` turns that into "return the blob unchanged".

import { concat, failWith, FinaliseError, finaliseBlob, HEAD_LIMIT, StreamFinaliser } from './finaliser.mjs'

const ID_EBML = 0x1a45dfa3
const ID_DOCTYPE = 0x4282
const ID_SEGMENT = 0x18538067
const ID_SEEK_HEAD = 0x114d9b74
const ID_SEEK = 0x4dbb
const ID_SEEK_ID = 0x53ab
const ID_SEEK_POSITION = 0x53ac
const ID_INFO = 0x1549a966
const ID_TIMECODE_SCALE = 0x2ad7b1
const ID_DURATION = 0x4489
const ID_TRACKS = 0x1654ae6b
const ID_TRACK_ENTRY = 0xae
const ID_TRACK_NUMBER = 0xd7
const ID_TRACK_TYPE = 0x83
const ID_CODEC_ID = 0x86
const ID_CLUSTER = 0x1f43b675
const ID_CLUSTER_TIMECODE = 0xe7
const ID_SIMPLE_BLOCK = 0xa3
const ID_BLOCK_GROUP = 0xa0
const ID_BLOCK = 0xa1
const ID_CUES = 0x1c53bb6b
const ID_CUE_POINT = 0xbb
const ID_CUE_TIME = 0xb3
const ID_CUE_TRACK_POSITIONS = 0xb7
const ID_CUE_TRACK = 0xf7
const ID_CUE_CLUSTER_POSITION = 0xf1
const ID_VOID = 0xec
const ID_CRC32 = 0xbf

/** The Segment's other children: any of them ends an unknown-size Cluster. */
const LEVEL1 = new Set([
  ID_SEEK_HEAD,
  ID_INFO,
  ID_TRACKS,
  ID_CLUSTER,
  ID_CUES,
  0x1254c367, // Tags
  0x1043a770, // Chapters
  0x1941a469, // Attachments
])

/** The most CuePoints kept (two numbers each): 65 536 clusters is 18 h of MediaRecorder audio. */
export const MAX_CUE_POINTS = 65536
export { HEAD_LIMIT }
/** No element claims more than this (1 TiB); larger known sizes are refused, not skipped. */
const SIZE_LIMIT = 2 ** 40
/** A block's first bytes: track number (up to 8), relative time (2), flags (1), Opus TOC and count. */
const BLOCK_KEEP = 13
/** The SeekHead the final header carries: Info, Tracks, Cues, each with an 8-byte position. */
const SEEK_HEAD_BYTES = 4 + 1 + 3 * (2 + 1 + (2 + 1 + 4) + (2 + 1 + 8))
/** Duration as an 8-byte float. */
const DURATION_BYTES = 2 + 1 + 8
/** Void element header: ID and an 8-byte size, so its length never depends on its payload. */
const VOID_HEADER = 9
/** The space the provisional header keeps free: SeekHead + Duration + a padding Void (≥ 32 bytes). */
export const HEADER_RESERVE = SEEK_HEAD_BYTES + DURATION_BYTES + VOID_HEADER + 40

/** Why a file could not be finalised: `not_webm`, `malformed`, `truncated`, `no_audio`, `too_large`, `state`. */
export class WebmFinaliseError extends FinaliseError {
  name = 'WebmFinaliseError'
}
const fail = failWith(WebmFinaliseError)

// --- EBML primitives ---------------------------------------------------------------------------

/** Length of a vint from its first byte (1..8), or 0 for 0x00 (invalid). */
function vintLength(first) {
  for (let len = 1; len <= 8; len++) if (first & (0x100 >> len)) return len
  return 0
}

/**
 * Reads an element header at `at` in `b`: `{ id, size (null = unknown), headerLength }`, or null when
 * `b` ends first. Throws on an ID over 4 bytes, a 0x00 lead byte or a size over SIZE_LIMIT.
 */
export function readElementHeader(b, at, end = b.length) {
  if (at >= end) return null
  const idLen = vintLength(b[at])
  if (idLen === 0 || idLen > 4) fail('malformed', `invalid EBML ID at byte ${at}`)
  if (at + idLen >= end) return null
  let id = 0
  for (let i = 0; i < idLen; i++) id = id * 256 + b[at + i]
  const sizeAt = at + idLen
  const sizeLen = vintLength(b[sizeAt])
  if (sizeLen === 0) fail('malformed', `invalid EBML size at byte ${sizeAt}`)
  if (sizeAt + sizeLen > end) return null
  let size = b[sizeAt] & (0xff >> sizeLen)
  let allOnes = size === 0xff >> sizeLen
  for (let i = 1; i < sizeLen; i++) {
    const byte = b[sizeAt + i]
    allOnes = allOnes && byte === 0xff
    size = size * 256 + byte
  }
  if (allOnes) return { id, size: null, headerLength: idLen + sizeLen }
  if (size > SIZE_LIMIT) fail('too_large', `element 0x${id.toString(16)} claims ${size} bytes`)
  return { id, size, headerLength: idLen + sizeLen }
}

/** The children of a known-size master held in memory: `[{ id, start, dataStart, end }]`. */
function children(b, start, end) {
  const out = []
  let at = start
  while (at < end) {
    const h = readElementHeader(b, at, end)
    if (!h) fail('malformed', `element header cut off at byte ${at}`)
    if (h.size === null) fail('malformed', `unknown-size element 0x${h.id.toString(16)} inside a header element`)
    const dataStart = at + h.headerLength
    if (dataStart + h.size > end) fail('malformed', `element 0x${h.id.toString(16)} overruns its parent`)
    out.push({ id: h.id, start: at, dataStart, end: dataStart + h.size })
    at = dataStart + h.size
  }
  return out
}

function readUint(b, start, end) {
  if (end - start > 8) fail('malformed', 'an unsigned integer longer than 8 bytes')
  let v = 0
  for (let i = start; i < end; i++) v = v * 256 + b[i]
  if (v > Number.MAX_SAFE_INTEGER) fail('too_large', 'an unsigned integer beyond 2^53')
  return v
}

function uintBytes(v) {
  const out = []
  do {
    out.unshift(v % 256)
    v = Math.floor(v / 256)
  } while (v > 0)
  return out
}

function sizeVint(size) {
  let len = 1
  while (len < 8 && size >= 2 ** (7 * len) - 1) len++
  const bytes = []
  let v = size
  for (let i = 0; i < len; i++) {
    bytes.unshift(v % 256)
    v = Math.floor(v / 256)
  }
  bytes[0] |= 0x100 >> len
  return bytes
}

/** An 8-byte size vint (0x01 + 7 bytes): fixed length, so the header region keeps its length. */
function size8(size) {
  const out = [0x01]
  for (let i = 6; i >= 0; i--) out.push(Math.floor(size / 2 ** (8 * i)) % 256)
  return out
}

function idBytes(id) {
  return uintBytes(id)
}

/** An element with a minimal size vint. `payload` is a byte array or Uint8Array. */
function element(id, payload) {
  return [...idBytes(id), ...sizeVint(payload.length), ...payload]
}

/** Nanoseconds of one Opus packet from its TOC byte and the next (RFC 6716 §3.1), or null. */
export function opusPacketNs(toc, next) {
  const config = toc >> 3
  let frameUs
  if (config < 12) frameUs = [10000, 20000, 40000, 60000][config & 3]
  else if (config < 16) frameUs = [10000, 20000][config & 1]
  else frameUs = [2500, 5000, 10000, 20000][config & 3]
  const code = toc & 3
  let frames = code === 0 ? 1 : code < 3 ? 2 : next === undefined ? null : next & 0x3f
  if (frames === null || frames === 0) return null
  return frames * frameUs * 1000
}

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
      const docType = children(b, h.headerLength, h.headerLength + h.size).find((c) => c.id === ID_DOCTYPE)
      const name = docType ? String.fromCharCode(...b.subarray(docType.dataStart, docType.end)) : ''
      if (name !== 'webm' && name !== 'matroska') fail('not_webm', `EBML DocType ${JSON.stringify(name)}`)
      this.ebml = b.slice(0, h.headerLength + h.size)
      this.headPos = this.ebml.length
    }
    if (this.segmentDataStart === undefined) {
      const h = readElementHeader(b, this.headPos, end)
      if (!h) return this.headRoom()
      if (h.id !== ID_SEGMENT) fail('malformed', 'the EBML header is not followed by a Segment')
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
      if (h.id === ID_CLUSTER) return this.startBody()
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
    if (id === ID_INFO) {
      const kept = []
      for (const c of children(b, dataStart, end)) {
        if (c.id === ID_TIMECODE_SCALE) this.scale = readUint(b, c.dataStart, c.end)
        if (c.id === ID_DURATION) this.hadDuration = true
        // Info is rewritten, so a CRC-32 of it would be wrong; Duration is ours to write.
        if (c.id !== ID_DURATION && c.id !== ID_CRC32 && c.id !== ID_VOID) kept.push(b.slice(c.start, c.end))
      }
      if (!(this.scale > 0)) fail('malformed', 'TimecodeScale is 0')
      this.infoKept = concat(kept)
    } else if (id === ID_TRACKS) {
      for (const entry of children(b, dataStart, end)) {
        if (entry.id !== ID_TRACK_ENTRY) continue
        let number = null
        let type = null
        let codec = ''
        for (const c of children(b, entry.dataStart, entry.end)) {
          if (c.id === ID_TRACK_NUMBER) number = readUint(b, c.dataStart, c.end)
          if (c.id === ID_TRACK_TYPE) type = readUint(b, c.dataStart, c.end)
          if (c.id === ID_CODEC_ID)
            codec = String.fromCharCode(...b.subarray(c.dataStart, Math.min(c.end, c.dataStart + 32)))
        }
        // The first audio track (type 2); MediaRecorder's audio-only files have just that one.
        if (number !== null && number > 0 && (this.track === null || (type === 2 && this.track.type !== 2)))
          this.track = { number, type, opus: codec === 'A_OPUS' }
      }
      this.kept.push(b.slice(start, end))
    } else if (id === ID_SEEK_HEAD) {
      for (const seek of children(b, dataStart, end)) {
        if (seek.id !== ID_SEEK) continue
        const sid = children(b, seek.dataStart, seek.end).find((c) => c.id === ID_SEEK_ID)
        if (sid && sid.end - sid.dataStart === 4 && readUint(b, sid.dataStart, sid.end) === ID_CUES)
          this.cuesSeen = true
      }
    } else if (id === ID_CUES) {
      this.cuesSeen = true
    } else if (id !== ID_VOID && id !== ID_CRC32) {
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
    const infoPayload = final ? concat([this.infoKept, float64Element(ID_DURATION, final.duration)]) : this.infoKept
    const info = concat([idBytes(ID_INFO), size8(infoPayload.length), infoPayload])
    const rest = concat(this.kept)
    const segmentHeader = [
      ...idBytes(ID_SEGMENT),
      ...(final ? size8(final.segmentSize) : [0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
    ]
    const seekHead = final
      ? seekHeadElement([
          [ID_INFO, SEEK_HEAD_BYTES],
          [ID_TRACKS, SEEK_HEAD_BYTES + info.length + this.tracksOffset()],
          [ID_CUES, final.cuesPosition],
        ])
      : new Uint8Array(0)
    const used = seekHead.length + (final ? DURATION_BYTES : 0)
    const voidLength = HEADER_RESERVE - used
    const pad = new Uint8Array(voidLength)
    pad.set([ID_VOID, ...size8(voidLength - VOID_HEADER)])
    return concat([this.ebml, segmentHeader, seekHead, info, rest, pad])
  }

  /** Where Tracks starts within the kept elements (they follow Info). */
  tracksOffset() {
    let at = 0
    for (const k of this.kept) {
      if (readElementHeader(k, 0).id === ID_TRACKS) return at
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
    if (id === ID_EBML || id === ID_SEGMENT)
      fail('malformed', `a second ${id === ID_EBML ? 'EBML header' : 'Segment'} at byte ${start}`)
    const top = this.open.at(-1)
    const parentEnd = top ? top.end : this.segmentEnd
    if (size === null && id !== ID_CLUSTER)
      fail('malformed', `unknown-size element 0x${id.toString(16)} at byte ${start}`)
    const end = size === null ? null : this.pos + size
    if (parentEnd !== null && (end === null ? this.pos > parentEnd : end > parentEnd))
      fail('malformed', `element 0x${id.toString(16)} at byte ${start} overruns its parent`)
    const where = top ? top.id : ID_SEGMENT
    if (where === ID_SEGMENT) {
      if (id === ID_CLUSTER) {
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
      if (id === ID_CUES) this.cuesSeen = true
      this.skip = size
    } else if (where === ID_CLUSTER) {
      if (id === ID_BLOCK_GROUP) {
        this.open.push({ id, end })
      } else if (id === ID_CLUSTER_TIMECODE) {
        if (size > 8) fail('malformed', `Cluster Timecode of ${size} bytes at byte ${start}`)
        this.read(id, size, size)
      } else if (id === ID_SIMPLE_BLOCK) {
        this.block(id, size, start)
      } else this.skip = size
    } else if (id === ID_BLOCK) {
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
    if (id === ID_CLUSTER_TIMECODE) {
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
    const shift = this.headerLength - this.inputDataStart
    const points = []
    for (let i = 0; i < this.clusterAt.length; i++) {
      const time = this.clusterTime[i]
      if (time === null) continue
      const position = this.clusterAt[i] + shift - (this.ebml.length + 12)
      const track = element(ID_CUE_TRACK_POSITIONS, [
        ...element(ID_CUE_TRACK, uintBytes(this.track.number)),
        ...element(ID_CUE_CLUSTER_POSITION, uintBytes(position)),
      ])
      points.push(new Uint8Array(element(ID_CUE_POINT, [...element(ID_CUE_TIME, uintBytes(time)), ...track])))
    }
    const cues = concat(points)
    const tail = concat([idBytes(ID_CUES), sizeVint(cues.length), cues])
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
      clusters: points.length,
      inputDataStart: this.inputDataStart,
      alreadyFinal: this.hadDuration && this.cuesSeen,
    }
  }
}

function float64Element(id, value) {
  const bytes = new Uint8Array(8)
  new DataView(bytes.buffer).setFloat64(0, value)
  return new Uint8Array(element(id, bytes))
}

function seekHeadElement(entries) {
  const seeks = []
  for (const [id, position] of entries) {
    // SeekPosition as a fixed 8-byte unsigned integer, so the SeekHead's length never varies.
    const fixed = []
    for (let i = 7; i >= 0; i--) fixed.push(Math.floor(position / 2 ** (8 * i)) % 256)
    seeks.push(...element(ID_SEEK, [...element(ID_SEEK_ID, idBytes(id)), ...element(ID_SEEK_POSITION, fixed)]))
  }
  const out = new Uint8Array(element(ID_SEEK_HEAD, seeks))
  if (out.length !== SEEK_HEAD_BYTES) fail('state', 'SeekHead length') // cannot happen
  return out
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
