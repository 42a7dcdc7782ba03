// Small readers of the test's own for finalised recordings (trusted input: the finalisers' and the
// route's output), shared by the finaliser specs and the route-agreement spec: an EBML reader for
// WebM (Segment, Info's Duration, the SeekHead, Cues, Clusters) and a box reader for fragmented MP4
// (durations, the sidx's references, the moofs).

// --- WebM --------------------------------------------------------------------------------------

export type El = { id: number; start: number; dataStart: number; end: number | null; children?: El[] }
const MASTERS = new Set([0x18538067, 0x114d9b74, 0x4dbb, 0x1549a966, 0x1654ae6b, 0x1f43b675, 0x1c53bb6b, 0xbb, 0xb7])
const LEVEL1 = new Set([0x114d9b74, 0x1549a966, 0x1654ae6b, 0x1f43b675, 0x1c53bb6b, 0x1254c367])

function vint(b: Buffer, at: number, keepMarker: boolean) {
  let len = 1
  while (len <= 8 && !(b[at] & (0x100 >> len))) len++
  let v = keepMarker ? b[at] : b[at] & (0xff >> len)
  let ones = v === 0xff >> len
  for (let i = 1; i < len; i++) {
    ones = ones && b[at + i] === 0xff
    v = v * 256 + b[at + i]
  }
  return { v, len, unknown: !keepMarker && ones }
}

export function parseEbml(b: Buffer, start = 0, end = b.length, parentId = 0): El[] {
  const out: El[] = []
  let at = start
  while (at < end) {
    const id = vint(b, at, true)
    const size = vint(b, at + id.len, false)
    const dataStart = at + id.len + size.len
    if (parentId === 0x1f43b675 && LEVEL1.has(id.v)) break // an unknown-size Cluster ends here
    let elEnd: number | null = size.unknown ? null : dataStart + size.v
    const el: El = { id: id.v, start: at, dataStart, end: elEnd }
    if (MASTERS.has(id.v)) {
      el.children = parseEbml(b, dataStart, elEnd ?? end, id.v)
      if (elEnd === null) elEnd = el.children.length ? (el.children.at(-1)!.end as number) : dataStart
    }
    out.push(el)
    at = elEnd as number
  }
  return out
}

export const ebmlUint = (b: Buffer, e: El) => b.subarray(e.dataStart, e.end as number).reduce((v, x) => v * 256 + x, 0)
export const findEls = (els: El[] | undefined, id: number) => (els ?? []).filter((e) => e.id === id)

export function describeWebm(b: Buffer) {
  const top = parseEbml(b)
  const segment = findEls(top, 0x18538067)[0]
  const kids = segment.children!
  const info = findEls(kids, 0x1549a966)[0]
  const scale = findEls(info.children, 0x2ad7b1).map((e) => ebmlUint(b, e))[0] ?? 1e6
  const duration = findEls(info.children, 0x4489)[0]
  return {
    segment,
    kids,
    scale,
    durationS: duration ? (b.readDoubleBE(duration.dataStart) * scale) / 1e9 : null,
    clusters: findEls(kids, 0x1f43b675),
    cues: findEls(kids, 0x1c53bb6b)[0] ?? null,
    seekHead: findEls(kids, 0x114d9b74)[0] ?? null,
  }
}

// --- MP4 ---------------------------------------------------------------------------------------

export type Box = { type: string; start: number; dataStart: number; end: number; children?: Box[] }
const CONTAINERS = new Set(['moov', 'trak', 'mdia', 'mvex', 'moof', 'traf'])
export function parseBoxes(b: Buffer, start = 0, end = b.length): Box[] {
  const out: Box[] = []
  for (let at = start; at < end;) {
    let size = b.readUInt32BE(at)
    let dataStart = at + 8
    if (size === 1) {
      size = Number(b.readBigUInt64BE(at + 8))
      dataStart += 8
    }
    const box: Box = { type: b.toString('latin1', at + 4, at + 8), start: at, dataStart, end: at + size }
    if (CONTAINERS.has(box.type)) box.children = parseBoxes(b, dataStart, at + size)
    out.push(box)
    at += size
  }
  return out
}
export const findBoxes = (boxes: Box[] | undefined, type: string) => (boxes ?? []).filter((x) => x.type === type)
export const boxPath = (boxes: Box[], ...types: string[]): Box => {
  let cur: Box | undefined
  let list = boxes
  for (const t of types) {
    cur = findBoxes(list, t)[0]
    list = cur?.children ?? []
  }
  return cur!
}
export const u64 = (b: Buffer, at: number) => Number(b.readBigUInt64BE(at))

export function describeMp4(b: Buffer) {
  const top = parseBoxes(b)
  const mvhd = boxPath(top, 'moov', 'mvhd')
  const tkhd = boxPath(top, 'moov', 'trak', 'tkhd')
  const mdhd = boxPath(top, 'moov', 'trak', 'mdia', 'mdhd')
  // Version 1: 64-bit times and durations; version 0: 32-bit.
  const v1 = (x: Box) => b[x.dataStart] === 1
  const scaleOf = (x: Box) => b.readUInt32BE(x.dataStart + (v1(x) ? 20 : 12))
  const durationOf = (x: Box, at1: number, at0: number) =>
    v1(x) ? u64(b, x.dataStart + at1) : b.readUInt32BE(x.dataStart + at0)
  const movieScale = scaleOf(mvhd)
  const mediaScale = scaleOf(mdhd)
  const sidx = findBoxes(top, 'sidx')[0] ?? null
  let references: { offset: number; size: number; time: number; duration: number }[] = []
  if (sidx) {
    const d = sidx.dataStart
    let offset = sidx.end + u64(b, d + 20)
    let time = u64(b, d + 12)
    const count = b.readUInt16BE(d + 30)
    for (let i = 0; i < count; i++) {
      const size = b.readUInt32BE(d + 32 + 12 * i) & 0x7fffffff
      const duration = b.readUInt32BE(d + 36 + 12 * i)
      references.push({ offset, size, time, duration })
      offset += size
      time += duration
    }
  }
  return {
    top,
    movieS: durationOf(mvhd, 24, 16) / movieScale,
    trackS: durationOf(tkhd, 28, 20) / movieScale,
    mediaS: durationOf(mdhd, 24, 16) / mediaScale,
    mediaScale,
    sidx,
    references,
    moofs: findBoxes(top, 'moof'),
  }
}
/** Each moof's tfdt (the fixture's fragments all have one). */
export const tfdtOf = (b: Buffer, moof: Box) => u64(b, boxPath(moof.children!, 'traf', 'tfdt').dataStart + 4)
