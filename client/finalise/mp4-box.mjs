// The box side of the MP4 finaliser (client/finalise/mp4.mjs): reading and writing box headers and
// integers, the sizes of what it writes, and the repair of WebKit's repeated moof. Plain JS
// (browsers and Node), no dependencies.
import { childrenOf, failWith, FinaliseError } from './base.mjs'

/** No box claims more than this (1 TiB); larger sizes are refused, not skipped. */
export const SIZE_LIMIT = 2 ** 40
/**
 * The most references the sidx holds. A longer recording gets references that each cover several
 * fragments (a seek then reads on from the start of its group): the header region stays one size.
 */
export const MAX_REFERENCES = 1024
/** A version-1 sidx: box header 8, version/flags 4, reference ID 4, timescale 4, earliest time 8,
 * first offset 8, reserved 2, reference count 2; then 12 bytes a reference. */
export const SIDX_FIXED = 40
export const SIDX_REFERENCE = 12
export const FREE_HEADER = 8
/** What the provisional header keeps free: a `free` box as long as the largest sidx plus its own header. */
export const HEADER_RESERVE = FREE_HEADER + SIDX_FIXED + SIDX_REFERENCE * MAX_REFERENCES
/** tfhd: version/flags, track ID, base data offset (8), description index, default duration. */
export const TFHD_KEEP = 24

/** Why a file could not be finalised: `not_mp4`, `unsupported`, `malformed`, `truncated`, `no_audio`, `too_large`, `state`. */
export class Mp4FinaliseError extends FinaliseError {
  name = 'Mp4FinaliseError'
}
export const fail = failWith(Mp4FinaliseError)

// --- box primitives ----------------------------------------------------------------------------

export const u32 = (b, at) => ((b[at] << 24) >>> 0) + (b[at + 1] << 16) + (b[at + 2] << 8) + b[at + 3]
export const u64 = (b, at) => u32(b, at) * 2 ** 32 + u32(b, at + 4)
export const typeOf = (b, at) => String.fromCharCode(b[at], b[at + 1], b[at + 2], b[at + 3])
export function putU32(b, at, v) {
  b[at] = (v >>> 24) & 0xff
  b[at + 1] = (v >>> 16) & 0xff
  b[at + 2] = (v >>> 8) & 0xff
  b[at + 3] = v & 0xff
}
export function putU64(b, at, v) {
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

export const printable = (type) => type.replace(/[^\x20-\x7e]/g, '?')

/** The child boxes of a box held in memory: `[{ type, start, dataStart, end }]`. */
export function boxes(b, start, end) {
  return childrenOf(start, end, (at) => {
    const h = readBoxHeader(b, at, end)
    if (!h) fail('malformed', `box header cut off at byte ${at}`)
    if (h.size === null) fail('malformed', `box '${printable(h.type)}' of size 0 inside the header`)
    if (at + h.size > end) fail('malformed', `box '${printable(h.type)}' overruns its parent`)
    return { type: h.type, start: at, dataStart: at + h.headerLength, end: at + h.size }
  })
}

export function box(type, payloadLength) {
  const out = new Uint8Array(8 + payloadLength)
  putU32(out, 0, out.length)
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i)
  return out
}

/**
 * Where a full box's duration field is, from its version: `{ at, wide }` (wide: 8 bytes). mvhd and
 * mdhd: created, modified, timescale, duration; tkhd: created, modified, track ID, reserved, duration.
 */
export function durationField(b, c) {
  const v1 = b[c.dataStart] === 1
  const rel = c.type === 'tkhd' ? (v1 ? 28 : 20) : v1 ? 24 : 16
  const need = rel + (v1 ? 8 : 4)
  if (c.end - c.dataStart < need) fail('malformed', `'${c.type}' shorter than its version's fields`)
  return { at: c.dataStart + rel, wide: v1 }
}

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
