// A long fragmented MP4 shaped as a MediaRecorder writes it (ftyp, moov, then one moof+mdat per
// `timeslice` chunk), built from a real recorder fixture: its header region, then its fragments
// over and over, each with its `mfhd` sequence number and its audio `tfdt` rewritten so the
// timeline runs on without a gap, and the fixture's last fragment at the end (WebKit's moof written
// twice included). What the finalisers read of a fragment (tfhd, tfdt, each trun record's duration,
// the mdat's length) is the fixture's own, so both the recorder's finaliser and the route's meter
// follow the file built here.
//
// `samples` keeps only a fragment's first samples (its trun cut to them, its mdat to their bytes):
// a file past the sidx's cap of 1 024 references is then a few MB, not the 16 KB a fragment of
// the full recording takes.
import fs from 'node:fs'
import path from 'node:path'
import { boxes, readBoxHeader, u32, u64, putU32, putU64 } from '../../client/finalise/mp4-box.mjs'
import { repo } from './common.mjs'

export const CHROMIUM_MP4 = path.join(repo, '__test__/fixtures/audio/chromium-20s-timeslice.m4a')
export const WEBKIT_MP4 = path.join(repo, '__test__/fixtures/audio/webkit-20s.m4a')

const top = (b) => {
  const out = []
  for (let at = 0; at < b.length;) {
    const h = readBoxHeader(b, at)
    if (!h || h.size === null) throw new Error(`the fixture has a box it cannot be built from at byte ${at}`)
    out.push({ type: h.type, start: at, end: at + h.size })
    at += h.size
  }
  return out
}
const child = (b, parent, type) => {
  const c = boxes(b, parent.start + 8, parent.end).find((x) => x.type === type)
  if (!c) throw new Error(`a ${parent.type} without its ${type}`)
  return c
}

/**
 * The fixture's parts: `head` (every byte before the first moof) and its fragments, each
 * `{ moof, mdat, repeated }` (`repeated`: the moof was written twice, as WebKit writes the one it
 * ends with, the first copy without its mdat).
 */
export function readMp4Fixture(file = CHROMIUM_MP4) {
  const b = new Uint8Array(fs.readFileSync(file))
  const list = top(b)
  const first = list.findIndex((x) => x.type === 'moof')
  const fragments = []
  for (let i = first; i < list.length; i++) {
    const x = list[i]
    if (x.type !== 'moof') throw new Error(`a top-level ${x.type} where a moof was expected`)
    const repeated = list[i + 1]?.type === 'moof'
    if (repeated) i++
    const mdat = list[++i]
    if (mdat?.type !== 'mdat') throw new Error(`a moof at byte ${x.start} without its mdat`)
    fragments.push({ moof: b.slice(x.start, x.end), mdat: b.slice(mdat.start, mdat.end), repeated })
  }
  return { head: b.slice(0, list[first].start), fragments }
}

/**
 * One fragment rewritten: its sequence number `seq`, its audio time `time` (the tfdt, in the
 * track's units) and at most `samples` samples. Returns `{ bytes, units }`: the moof and mdat (the
 * moof twice when the fixture's was), and the units its samples last. One traf, whose trun has a
 * data offset and each sample's duration and size, as MediaRecorder writes it.
 */
function rewrite(fragment, seq, time, samples) {
  const src = fragment.moof
  const moofBox = { type: 'moof', start: 0, end: src.length }
  const trafs = boxes(src, 8, src.length).filter((x) => x.type === 'traf')
  if (trafs.length !== 1) throw new Error('a moof with other than one traf')
  const traf = trafs[0]
  const trun = child(src, traf, 'trun')
  const flags = u32(src, trun.dataStart) & 0xffffff
  if ((flags & 0x301) !== 0x301) throw new Error('a trun without a data offset and sample durations and sizes')
  const count = u32(src, trun.dataStart + 4)
  const prefix = 8 + 4 + (flags & 0x4 ? 4 : 0)
  const recLen = 4 * (((flags >> 8) & 1) + ((flags >> 9) & 1) + ((flags >> 10) & 1) + ((flags >> 11) & 1))
  const kept = Math.min(count, samples)
  const cut = (count - kept) * recLen
  // The moof without the records cut, every size on the way down shorter by as much.
  const moof = new Uint8Array(src.length - cut)
  const recordsEnd = trun.dataStart + prefix + kept * recLen
  moof.set(src.subarray(0, recordsEnd))
  moof.set(src.subarray(recordsEnd + cut), recordsEnd)
  for (const at of [0, traf.start, trun.start]) putU32(moof, at, u32(src, at) - cut)
  putU32(moof, trun.dataStart + 4, kept)
  // The data offset counts from the moof's first byte; the samples stay where the mdat's payload starts.
  const dataOffset = u32(src, trun.dataStart + 8)
  putU32(moof, trun.dataStart + 8, dataOffset - cut)
  const skipped = dataOffset - (src.length + 8)
  let units = 0
  let bytes = 0
  for (let i = 0; i < kept; i++) {
    const rec = trun.dataStart + prefix + i * recLen
    units += u32(src, rec)
    bytes += u32(src, rec + 4)
  }
  const mfhd = child(moof, moofBox, 'mfhd')
  putU32(moof, mfhd.dataStart + 4, seq)
  const tfdt = child(moof, { type: 'traf', start: traf.start, end: traf.end - cut }, 'tfdt')
  if (moof[tfdt.dataStart] === 1) putU64(moof, tfdt.dataStart + 4, time)
  else if (time < 2 ** 32) putU32(moof, tfdt.dataStart + 4, time)
  else throw new Error('a version 0 tfdt past 2^32 units')
  if (u32(fragment.mdat, 0) === 1) throw new Error('an mdat with a 64-bit size')
  const mdat = new Uint8Array(8 + skipped + bytes)
  putU32(mdat, 0, mdat.length)
  mdat.set(fragment.mdat.subarray(4, 8), 4)
  mdat.set(fragment.mdat.subarray(8, 8 + skipped + bytes), 8)
  return { bytes: fragment.repeated ? [moof, moof, mdat] : [moof, mdat], units }
}

/** The audio time of the fixture's first fragment (where the built timeline starts). */
function firstTime(fragment) {
  const b = fragment.moof
  const traf = boxes(b, 8, b.length).find((x) => x.type === 'traf')
  const tfdt = child(b, traf, 'tfdt')
  return b[tfdt.dataStart] === 1 ? u64(b, tfdt.dataStart + 4) : u32(b, tfdt.dataStart + 4)
}

/**
 * A recording of `fragments` fragments: the fixture's full ones (all but its last) repeated, then
 * its last one. Returns `{ bytes, headerLength, moofs, times, units }`: where each counted moof
 * starts (a repeated moof's second copy), each fragment's tfdt, and the total units of the track.
 */
export function longMp4(fragments, { file = CHROMIUM_MP4, samples = Infinity } = {}) {
  const { head, fragments: all } = readMp4Fixture(file)
  const full = all.slice(0, -1)
  const pieces = [head]
  const moofs = []
  const times = []
  let at = head.length
  let time = firstTime(all[0])
  const start = time
  for (let k = 0; k < fragments; k++) {
    const source = k === fragments - 1 ? all.at(-1) : full[k % full.length]
    const { bytes, units } = rewrite(source, k + 1, time, samples)
    moofs.push(at + (bytes.length === 3 ? bytes[0].length : 0))
    times.push(time)
    for (const p of bytes) {
      pieces.push(p)
      at += p.length
    }
    time += units
  }
  const bytes = new Uint8Array(at)
  let to = 0
  for (const p of pieces) {
    bytes.set(p, to)
    to += p.length
  }
  return { bytes, headerLength: head.length, moofs, times, units: time - start }
}
