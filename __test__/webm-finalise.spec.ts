// session-audio/client's WebM finaliser (client/finalise/webm.mjs) on a real MediaRecorder recording: the
// finalised file carries a right Duration and Cues that point at its Clusters, the incremental path
// gives the same bytes whatever the chunking, and hostile input ends quickly with a clear code.
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createWebmFinaliser, finaliseWebm, MAX_CUE_POINTS, WebmFinaliseError } from '../client/finalise/webm.mjs'
import { expectFinaliserAnswer, measuredByRoute, startStack, type Stack } from './helpers'
import { describeWebm as describeFile, ebmlUint as uint, findEls as find, parseEbml as parse } from './finalised-files'

const dir = path.resolve(__dirname, 'fixtures/audio')
const RAW = 'chromium-20s-timeslice.webm'
const raw = fs.readFileSync(path.join(dir, RAW))
const about: { decodedSeconds: number; chunks: number[] } = JSON.parse(
  fs.readFileSync(path.join(dir, `${RAW}.json`), 'utf8'),
)

const bytesOf = async (blob: Blob) => Buffer.from(await blob.arrayBuffer())
const webm = (b: Uint8Array) => new Blob([b], { type: 'audio/webm;codecs=opus' })

/** The incremental path as a recorder uses it: push each chunk, swap in the header, append the tail. */
function incremental(input: Buffer, sizes: number[]) {
  const f = createWebmFinaliser()
  const out: Uint8Array[] = []
  let at = 0
  for (const n of sizes) {
    out.push(f.push(input.subarray(at, at + n)))
    at += n
  }
  const provisional = Buffer.concat(out)
  const final = f.finish()
  return {
    f,
    final,
    provisional,
    bytes: Buffer.concat([final.header, provisional.subarray(f.headerLength!), final.tail]),
  }
}
const every = (n: number, total = raw.length) => Array.from({ length: Math.ceil(total / n) }, () => n)

describe('the raw MediaRecorder fixture', () => {
  it('has an unknown-size Segment, no Duration and no Cues, and several clusters', () => {
    const d = describeFile(raw)
    expect(d.segment.end).toBeNull()
    expect(d.durationS).toBeNull()
    expect(d.cues).toBeNull()
    expect(d.clusters.length).toBeGreaterThanOrEqual(10)
    expect(d.clusters.every((c) => c.end === null)).toBe(true)
    expect(about.chunks.reduce((a, b) => a + b, 0)).toBe(raw.length)
  })
})

describe('finaliseWebm on the fixture', () => {
  it('writes a Duration within 1 % of the decoded length, a known Segment size, and a CuePoint per cluster pointing at it', async () => {
    const out = await bytesOf(await finaliseWebm(webm(raw)))
    const d = describeFile(out)
    expect(Math.abs(d.durationS! - about.decodedSeconds) / about.decodedSeconds).toBeLessThan(0.01)
    expect(d.segment.end).toBe(out.length)
    const points = find(d.cues!.children, 0xbb)
    expect(points.length).toBe(d.clusters.length)
    expect(d.clusters.length).toBe(describeFile(raw).clusters.length)
    points.forEach((p, i) => {
      const time = uint(out, find(p.children, 0xb3)[0])
      const pos = find(p.children, 0xb7)[0]
      expect(uint(out, find(pos.children, 0xf7)[0])).toBe(1)
      const at = d.segment.dataStart + uint(out, find(pos.children, 0xf1)[0])
      expect(out.readUInt32BE(at)).toBe(0x1f43b675)
      expect(at).toBe(d.clusters[i].start)
      const timecode = find(parse(out, d.clusters[i].dataStart, d.clusters[i].dataStart + 8), 0xe7)[0]
      expect(time).toBe(uint(out, timecode))
    })
    // The SeekHead points at Info, Tracks and the Cues.
    const seeks = find(d.seekHead!.children, 0x4dbb).map((s) => [
      out.readUInt32BE(find(s.children, 0x53ab)[0].dataStart),
      d.segment.dataStart + uint(out, find(s.children, 0x53ac)[0]),
    ])
    for (const [id, at] of seeks) expect(out.readUInt32BE(at)).toBe(id)
    expect(seeks.map(([id]) => id)).toEqual([0x1549a966, 0x1654ae6b, 0x1c53bb6b])
    // The audio itself is the input's, byte for byte, and keeps its offset.
    const f = createWebmFinaliser()
    f.push(raw)
    const final = f.finish()
    expect(
      out.subarray(f.headerLength!, out.length - final.tail.length).equals(raw.subarray(final.inputDataStart)),
    ).toBe(true)
  })

  it('returns a non-WebM blob, an empty one and an already finalised file unchanged (the same Blob)', async () => {
    const finalised = await finaliseWebm(webm(raw))
    for (const blob of [
      new Blob([fs.readFileSync(path.join(dir, 'tone-5s.mp3'))], { type: 'audio/mpeg' }),
      new Blob([]),
      new Blob(['hello'], { type: 'audio/webm' }),
      finalised,
      webm(fs.readFileSync(path.join(dir, 'sweep-60s.webm'))), // ffmpeg's, with Duration and Cues
    ])
      expect(await finaliseWebm(blob)).toBe(blob)
    expect(finalised).not.toBe(raw)
  })
})

describe('the incremental finaliser', () => {
  const whole = finaliseWebm(webm(raw)).then(bytesOf)
  const chunkings: [string, number[]][] = [
    ["the recorder's own chunks", about.chunks],
    ['1 byte', every(1)],
    ['7 bytes', every(7)],
    ['64 KiB', every(65536)],
    ['one piece', [raw.length]],
  ]
  for (const [name, sizes] of chunkings)
    it(`fed ${name} at a time: the same bytes as the whole-file path, the header region the same length`, async () => {
      const { f, final, provisional, bytes } = incremental(raw, sizes)
      expect(bytes.equals(await whole)).toBe(true)
      expect(final.header.length).toBe(f.headerLength)
      // Every output byte after the header region is the input's at a fixed shift: parts already
      // uploaded stay right.
      expect(provisional.length).toBe(f.headerLength! + raw.length - final.inputDataStart)
      expect(f.bytesOut).toBe(provisional.length)
    })

  it("emits the header region with the recorder's first chunk, and the provisional file is valid WebM", () => {
    const f = createWebmFinaliser()
    const first = f.push(raw.subarray(0, about.chunks[0]))
    expect(f.headerLength).toBeGreaterThan(0)
    expect(first.length).toBe(f.headerLength! + about.chunks[0] - 146)
    const { provisional } = incremental(raw, about.chunks)
    const d = describeFile(provisional)
    expect(d.segment.end).toBeNull()
    expect(d.durationS).toBeNull()
    expect(d.clusters.length).toBe(describeFile(raw).clusters.length)
    expect(find(d.kids, 0xec)[0].end! - find(d.kids, 0xec)[0].start).toBeGreaterThanOrEqual(79 + 9)
  })

  it('a recording cut short (a crash mid-block) cannot finish as it is, but finishes at completeBytes: up to its last whole block', () => {
    const full = createWebmFinaliser()
    full.push(raw)
    // The whole file ends on a whole block.
    expect(full.completeBytes).toBe(raw.length)
    const fullMs = full.finish().durationMs
    // Cut inside the last cluster's blocks at several points, as a crash may leave the journal.
    for (const cut of [raw.length - 1, raw.length - 37, raw.length - 500, Math.floor(raw.length * 0.6) + 3]) {
      const torn = createWebmFinaliser()
      torn.push(raw.subarray(0, cut))
      const clean = torn.completeBytes!
      expect(clean).toBeLessThanOrEqual(cut)
      expect(cut - clean).toBeLessThan(2000) // at most a block or two is lost
      const again = createWebmFinaliser()
      again.push(raw.subarray(0, clean))
      const final = again.finish()
      const d = describeFile(Buffer.concat([final.header, raw.subarray(final.inputDataStart, clean), final.tail]))
      expect(d.durationS! * 1000).toBeLessThanOrEqual(fullMs)
      expect(d.durationS! * 1000).toBeGreaterThan((fullMs * cut) / raw.length - 1500)
    }
    // Where the cut leaves a partial element, finishing as it is fails (truncated).
    const partial = createWebmFinaliser()
    partial.push(raw.subarray(0, raw.length - 37))
    expect(partial.completeBytes).toBeLessThan(raw.length - 37)
    expect(() => partial.finish()).toThrow(WebmFinaliseError)
  })

  // A crash or a reload ends the journal wherever MediaRecorder's last chunk ended, and Chromium
  // cuts chunks on its timer, not between elements: each of the fixture's chunks ends one byte
  // (the next SimpleBlock's ID) into the next block. A resume finalises up to `completeBytes`.
  const finishes = (b: Buffer) => {
    try {
      const f = createWebmFinaliser()
      f.push(b)
      return f.finish()
    } catch {
      return null
    }
  }
  const refusal = (b: Buffer) => {
    try {
      const f = createWebmFinaliser()
      f.push(b)
      f.finish()
      return null
    } catch (e) {
      return (e as WebmFinaliseError).code
    }
  }
  const completeAt = (b: Buffer) => {
    const f = createWebmFinaliser()
    f.push(b)
    return f.completeBytes
  }
  it("a recording ended after any of the recorder's chunks finishes up to completeBytes, the last block before it", () => {
    let at = 0
    for (const [i, n] of about.chunks.entries()) {
      at += n
      const prefix = raw.subarray(0, at)
      const whole = completeAt(prefix)!
      if (i === about.chunks.length - 1) {
        expect(whole).toBe(raw.length)
        continue
      }
      expect(finishes(prefix), `chunk ${i} ends inside an element`).toBeNull()
      expect(raw[whole]).toBe(0xa3) // a SimpleBlock starts where the whole part ends
      expect(at - whole).toBe(1)
      const final = finishes(raw.subarray(0, whole))!
      expect(final).not.toBeNull()
      // Its Duration is where the audio it holds ends: about one chunk (1 s here) a chunk.
      expect(final.durationMs).toBeGreaterThan(i * 1000 - 200)
    }
  })

  it('completeBytes is the longest prefix finish() accepts, wherever the recording is cut', () => {
    const firstCluster = find(find(parse(raw), 0x18538067)[0].children, 0x1f43b675)[0]
    const firstBlockEnd = find(firstCluster.children, 0xa3)[0].end!
    expect(completeAt(raw.subarray(0, 140))).toBeNull() // before the first Cluster
    let seen = 0
    for (let cut = 146; cut <= raw.length; cut += cut < 4000 ? 1 : 997) {
      const whole = completeAt(raw.subarray(0, cut))
      if (whole === null) {
        // The first Cluster's header is not whole yet: nothing to finish.
        expect(finishes(raw.subarray(0, cut))).toBeNull()
        continue
      }
      seen++
      expect(whole).toBeLessThanOrEqual(cut)
      // Cut inside an element: truncated. At its end: it finishes (no_audio before the first block).
      expect(refusal(raw.subarray(0, cut)) === 'truncated', `cut at ${cut}`).toBe(whole < cut)
      expect(refusal(raw.subarray(0, whole)), `finish at ${whole} (cut ${cut})`).toBe(
        whole < firstBlockEnd ? 'no_audio' : null,
      )
    }
    expect(seen).toBeGreaterThan(3500)
    // The same whatever the chunking: it follows the bytes, not the pushes.
    const f = createWebmFinaliser()
    for (let at = 0; at < 60000; at += 7) f.push(raw.subarray(at, Math.min(at + 7, 60000)))
    expect(f.completeBytes).toBe(completeAt(raw.subarray(0, 60000)))
  })

  it('a file of very many tiny clusters keeps at most MAX_CUE_POINTS cues (every other one dropped as it fills), each pointing at a Cluster', () => {
    const first = raw.indexOf(Buffer.from([0x1f, 0x43, 0xb6, 0x75]))
    const header = raw.subarray(0, first)
    const u = (n: number, len: number) =>
      Buffer.from(Array.from({ length: len }, (_, i) => (n >> (8 * (len - 1 - i))) & 0xff))
    const el = (id: Buffer, payload: Buffer) => Buffer.concat([id, Buffer.from([0x80 | payload.length]), payload])
    const clusters = MAX_CUE_POINTS + 5000
    const pieces: Buffer[] = [header]
    for (let i = 0; i < clusters; i++) {
      // Cluster (unknown size) → Timecode i*20 ms → one SimpleBlock of track 1 with an Opus TOC byte.
      pieces.push(Buffer.from([0x1f, 0x43, 0xb6, 0x75, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]))
      pieces.push(el(Buffer.from([0xe7]), u(i * 20, 4)))
      pieces.push(el(Buffer.from([0xa3]), Buffer.from([0x81, 0x00, 0x00, 0x80, 0xfc, 0x00, 0x00])))
    }
    const file = Buffer.concat(pieces)
    const f = createWebmFinaliser()
    const out = f.push(file)
    const final = f.finish()
    expect(final.clusters).toBeLessThanOrEqual(MAX_CUE_POINTS)
    expect(final.clusters).toBeGreaterThan(MAX_CUE_POINTS / 2)
    const d = describeFile(Buffer.concat([final.header, out.subarray(final.header.length), final.tail]))
    expect(find(d.cues!.children!, 0xbb).length).toBe(final.clusters)
    expect(d.durationS!).toBeCloseTo(((clusters - 1) * 20 + 20) / 1000, 1)
  })

  it('refuses push() after finish() and finish() twice', () => {
    const f = createWebmFinaliser()
    f.push(raw)
    f.finish()
    expect(() => f.push(raw)).toThrow(/after finish/)
    expect(() => f.finish()).toThrow(/twice/)
  })
})

// --- hostile input -----------------------------------------------------------------------------

function sizeV(n: number) {
  let len = 1
  while (len < 8 && n >= 2 ** (7 * len) - 1) len++
  const out: number[] = []
  for (let i = 0; i < len; i++) out.unshift(Math.floor(n / 256 ** i) % 256)
  out[0] |= 0x100 >> len
  return out
}
const idB = (id: number) => {
  const out: number[] = []
  for (let v = id; v > 0; v = Math.floor(v / 256)) out.unshift(v % 256)
  return out
}
const el = (id: number, payload: number[] | Buffer) => Buffer.from([...idB(id), ...sizeV(payload.length), ...payload])
const rawSize = (id: number, size: number[]) => Buffer.from([...idB(id), ...size])
const UNKNOWN8 = [0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
/** The fixture's EBML header, Segment header, Info and Tracks: everything before its first Cluster. */
const head = raw.subarray(0, 146)
const cluster = (time: number, ...blocks: Buffer[]) =>
  Buffer.concat([rawSize(0x1f43b675, UNKNOWN8), el(0xe7, [time]), ...blocks])
const block = (track: number, rel: number) => el(0xa3, [0x80 | track, 0, rel, 0x80, 0xfc, 0xff, 0xfe])
const good = Buffer.concat([head, cluster(0, block(1, 0), block(1, 20)), cluster(40, block(1, 0))])
/** `depth` BlockGroups, each the only child of the one around it, a block in the middle. */
function nested(depth: number) {
  const inner = block(1, 0)
  const headers: Buffer[] = []
  let length = inner.length
  for (let i = 0; i < depth; i++) {
    const h = Buffer.from([0xa0, ...sizeV(length)])
    headers.push(h)
    length += h.length
  }
  return Buffer.concat([...headers.reverse(), inner])
}
/** A known-size Segment of `size` bytes around the fixture's Info and Tracks. */
const knownSegment = (size: number, ...rest: Buffer[]) =>
  Buffer.concat([raw.subarray(0, 40), Buffer.from(sizeV(size)), raw.subarray(48, 146), ...rest])

describe('hostile and broken input: a bounded answer, no hang', () => {
  // name, bytes, the code the incremental finaliser throws (null: it finalises).
  const cases: [string, Buffer, string | null][] = [
    ['a minimal valid recording', good, null],
    ['truncated inside the EBML header', raw.subarray(0, 20), 'truncated'],
    ['truncated before the first Cluster', raw.subarray(0, 140), 'truncated'],
    ['truncated inside a block', raw.subarray(0, 60000), 'truncated'],
    ['truncated inside an element header', Buffer.concat([good, Buffer.from([0x1f, 0x43])]), 'truncated'],
    ['cut at a Cluster boundary (a recorder that stopped there)', good.subarray(0, good.length - 24), null],
    ['garbage after the EBML magic', Buffer.concat([raw.subarray(0, 4), Buffer.alloc(5000, 0x00)]), 'malformed'],
    ['garbage where a Cluster should continue', Buffer.concat([good, Buffer.alloc(64, 0x00)]), 'malformed'],
    ['a SimpleBlock of size 2^56-1 (unknown)', Buffer.concat([head, cluster(0), rawSize(0xa3, UNKNOWN8)]), 'malformed'],
    [
      'a Void of size 2^56-2',
      Buffer.concat([good, rawSize(0xec, [0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe])]),
      'too_large',
    ],
    [
      'a Void claiming 512 GiB that is not there',
      Buffer.concat([good, rawSize(0xec, [0x01, 0, 0, 0x80, 0, 0, 0, 0])]),
      'truncated',
    ],
    [
      'a header element claiming 2 MiB',
      Buffer.concat([raw.subarray(0, 48), rawSize(0x1254c367, [0x10, 0x20, 0, 0])]),
      'too_large',
    ],
    ['100 000 nested BlockGroups', Buffer.concat([head, cluster(0, block(1, 0), nested(100_000))]), null],
    [
      'a Cluster overrunning a known-size Segment',
      knownSegment(200, el(0x1f43b675, Buffer.concat([el(0xe7, [0]), block(1, 0), el(0xec, Buffer.alloc(170))]))),
      'malformed',
    ],
    [
      'a known-size Segment and Clusters (another muxer)',
      knownSegment(
        98 + 2 * 17,
        el(0x1f43b675, Buffer.concat([el(0xe7, [0]), block(1, 0)])),
        el(0x1f43b675, Buffer.concat([el(0xe7, [20]), block(1, 0)])),
      ),
      null,
    ],
    [
      '100 000 zero-length Voids between clusters',
      Buffer.concat([good, Buffer.alloc(200_000).fill(Buffer.from([0xec, 0x80])), cluster(60, block(1, 0))]),
      null,
    ],
    ['a zero-length SimpleBlock', Buffer.concat([head, cluster(0), el(0xa3, [])]), 'malformed'],
    [
      'zero-length Clusters',
      Buffer.concat([head, el(0x1f43b675, []), el(0x1f43b675, []), cluster(0, block(1, 0))]),
      null,
    ],
    ['an ID with a 0x00 lead byte', Buffer.concat([good, Buffer.from([0x00, 0x81, 0x00])]), 'malformed'],
    ['an ID over 4 bytes', Buffer.concat([good, Buffer.from([0x08, 1, 2, 3, 4, 0x80])]), 'malformed'],
    ['blocks of another track only', Buffer.concat([head, cluster(0, block(2, 0), block(2, 20))]), 'no_audio'],
    ['a second EBML header in the body', Buffer.concat([good, raw.subarray(0, 40)]), 'malformed'],
    ['an unknown-size Info', Buffer.concat([raw.subarray(0, 48), rawSize(0x1549a966, UNKNOWN8)]), 'malformed'],
    ['a DocType that is not webm', Buffer.from(raw.subarray(0, 146)).fill(0x78, 0x18, 0x1c), 'not_webm'],
  ]
  for (const [name, bytes, code] of cases)
    it(`${name}: ${code ?? 'finalised'}`, () =>
      expectFinaliserAnswer(bytes, code, {
        incremental: (b) => incremental(b, every(4096, b.length)),
        ErrorClass: WebmFinaliseError,
        finalise: finaliseWebm,
        toBlob: webm,
      }))
})

describe("the route's duration meter", () => {
  let s: Stack
  beforeAll(async () => {
    s = await startStack()
  })
  afterAll(() => s?.close())

  const measured = (audio: Buffer) => measuredByRoute(s, audio, 'audio/webm;codecs=opus', about.decodedSeconds * 1000)

  it('measures the raw and the finalised file the same, within 1 % of the decoded length and of the Duration written', async () => {
    const finalised = await bytesOf(await finaliseWebm(webm(raw)))
    const [before, after] = [await measured(raw), await measured(finalised)]
    expect(after).toBe(before)
    expect(Math.abs(after / 1000 - about.decodedSeconds) / about.decodedSeconds).toBeLessThan(0.01)
    expect(Math.abs(describeFile(finalised).durationS! * 1000 - after) / after).toBeLessThan(0.01)
  })
})
