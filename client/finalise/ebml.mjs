// The EBML side of the WebM finaliser (client/finalise/webm.mjs): the element IDs it reads and
// writes, reading element headers and integers, and writing elements of fixed or minimal length.
// Plain JS (browsers and Node), no dependencies.
import { childrenOf, concat, failWith, FinaliseError } from './base.mjs'

/** The element IDs the finaliser reads or writes. */
export const ID = {
  EBML: 0x1a45dfa3,
  DOCTYPE: 0x4282,
  SEGMENT: 0x18538067,
  SEEK_HEAD: 0x114d9b74,
  SEEK: 0x4dbb,
  SEEK_ID: 0x53ab,
  SEEK_POSITION: 0x53ac,
  INFO: 0x1549a966,
  TIMECODE_SCALE: 0x2ad7b1,
  DURATION: 0x4489,
  TRACKS: 0x1654ae6b,
  TRACK_ENTRY: 0xae,
  TRACK_NUMBER: 0xd7,
  TRACK_TYPE: 0x83,
  CODEC_ID: 0x86,
  CLUSTER: 0x1f43b675,
  CLUSTER_TIMECODE: 0xe7,
  SIMPLE_BLOCK: 0xa3,
  BLOCK_GROUP: 0xa0,
  BLOCK: 0xa1,
  CUES: 0x1c53bb6b,
  CUE_POINT: 0xbb,
  CUE_TIME: 0xb3,
  CUE_TRACK_POSITIONS: 0xb7,
  CUE_TRACK: 0xf7,
  CUE_CLUSTER_POSITION: 0xf1,
  VOID: 0xec,
  CRC32: 0xbf,
}

/** The Segment's other children: any of them ends an unknown-size Cluster. */
export const LEVEL1 = new Set([
  ID.SEEK_HEAD,
  ID.INFO,
  ID.TRACKS,
  ID.CLUSTER,
  ID.CUES,
  0x1254c367, // Tags
  0x1043a770, // Chapters
  0x1941a469, // Attachments
])

/** No element claims more than this (1 TiB); larger known sizes are refused, not skipped. */
export const SIZE_LIMIT = 2 ** 40
/** A block's first bytes: track number (up to 8), relative time (2), flags (1), Opus TOC and count. */
export const BLOCK_KEEP = 13
/** The SeekHead the final header carries: Info, Tracks, Cues, each with an 8-byte position. */
export const SEEK_HEAD_BYTES = 4 + 1 + 3 * (2 + 1 + (2 + 1 + 4) + (2 + 1 + 8))
/** Duration as an 8-byte float. */
export const DURATION_BYTES = 2 + 1 + 8
/** Void element header: ID and an 8-byte size, so its length never depends on its payload. */
export const VOID_HEADER = 9
/** The space the provisional header keeps free: SeekHead + Duration + a padding Void (≥ 32 bytes). */
export const HEADER_RESERVE = SEEK_HEAD_BYTES + DURATION_BYTES + VOID_HEADER + 40
/** Why a file could not be finalised: `not_webm`, `malformed`, `truncated`, `no_audio`, `too_large`, `state`. */
export class WebmFinaliseError extends FinaliseError {
  name = 'WebmFinaliseError'
}
export const fail = failWith(WebmFinaliseError)

// --- EBML primitives ---------------------------------------------------------------------------

/** Length of a vint from its first byte (1..8), or 0 for 0x00 (invalid). */
export function vintLength(first) {
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
export function children(b, start, end) {
  return childrenOf(start, end, (at) => {
    const h = readElementHeader(b, at, end)
    if (!h) fail('malformed', `element header cut off at byte ${at}`)
    if (h.size === null) fail('malformed', `unknown-size element 0x${h.id.toString(16)} inside a header element`)
    const dataStart = at + h.headerLength
    if (dataStart + h.size > end) fail('malformed', `element 0x${h.id.toString(16)} overruns its parent`)
    return { id: h.id, start: at, dataStart, end: dataStart + h.size }
  })
}

export function readUint(b, start, end) {
  if (end - start > 8) fail('malformed', 'an unsigned integer longer than 8 bytes')
  let v = 0
  for (let i = start; i < end; i++) v = v * 256 + b[i]
  if (v > Number.MAX_SAFE_INTEGER) fail('too_large', 'an unsigned integer beyond 2^53')
  return v
}

export function uintBytes(v) {
  const out = []
  do {
    out.unshift(v % 256)
    v = Math.floor(v / 256)
  } while (v > 0)
  return out
}

export function sizeVint(size) {
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
export function size8(size) {
  const out = [0x01]
  for (let i = 6; i >= 0; i--) out.push(Math.floor(size / 2 ** (8 * i)) % 256)
  return out
}

export function idBytes(id) {
  return uintBytes(id)
}

/** An element with a minimal size vint. `payload` is a byte array or Uint8Array. */
export function element(id, payload) {
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

export function float64Element(id, value) {
  const bytes = new Uint8Array(8)
  new DataView(bytes.buffer).setFloat64(0, value)
  return new Uint8Array(element(id, bytes))
}

export function seekHeadElement(entries) {
  const seeks = []
  for (const [id, position] of entries) {
    // SeekPosition as a fixed 8-byte unsigned integer, so the SeekHead's length never varies.
    const fixed = []
    for (let i = 7; i >= 0; i--) fixed.push(Math.floor(position / 2 ** (8 * i)) % 256)
    seeks.push(...element(ID.SEEK, [...element(ID.SEEK_ID, idBytes(id)), ...element(ID.SEEK_POSITION, fixed)]))
  }
  const out = new Uint8Array(element(ID.SEEK_HEAD, seeks))
  if (out.length !== SEEK_HEAD_BYTES) fail('state', 'SeekHead length') // cannot happen
  return out
}

/**
 * The Cues for clusters at input positions `clusterAt` with times `clusterTime` (null: no block of
 * the track, no CuePoint): each position plus `shift` is its position in the Segment's data.
 * Returns `{ tail, clusters }`, the Cues element and how many CuePoints it holds.
 */
export function cuesElement(clusterAt, clusterTime, shift, trackNumber) {
  const points = []
  for (let i = 0; i < clusterAt.length; i++) {
    const time = clusterTime[i]
    if (time === null) continue
    const position = clusterAt[i] + shift
    const track = element(ID.CUE_TRACK_POSITIONS, [
      ...element(ID.CUE_TRACK, uintBytes(trackNumber)),
      ...element(ID.CUE_CLUSTER_POSITION, uintBytes(position)),
    ])
    points.push(new Uint8Array(element(ID.CUE_POINT, [...element(ID.CUE_TIME, uintBytes(time)), ...track])))
  }
  const cues = concat(points)
  return { tail: concat([idBytes(ID.CUES), sizeVint(cues.length), cues]), clusters: points.length }
}
