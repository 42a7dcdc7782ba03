// session-audio/client's MP4 finaliser (client/finalise/mp4.mjs) on a real MediaRecorder fragmented MP4: the
// finalised file carries durations and a segment index (sidx) that point at its fragments, the
// incremental path gives the same bytes whatever the chunking, and hostile input ends quickly with a
// clear code.
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createMp4Finaliser, finaliseMp4, Mp4FinaliseError, repairRepeatedMoof } from '../client/finalise/mp4.mjs'
import { expectFinaliserAnswer, measuredByRoute, startStack, type Stack } from './helpers'
import { describeMp4 as describeFile, findBoxes as find, parseBoxes as parse, tfdtOf as tfdt } from './finalised-files'

const dir = path.resolve(__dirname, 'fixtures/audio')
const RAW = 'chromium-20s-timeslice.m4a'
const raw = fs.readFileSync(path.join(dir, RAW))
const about: { decodedSeconds: number; chunks: number[] } = JSON.parse(
  fs.readFileSync(path.join(dir, `${RAW}.json`), 'utf8'),
)
const bytesOf = async (blob: Blob) => Buffer.from(await blob.arrayBuffer())
const mp4 = (b: Uint8Array) => new Blob([b], { type: 'audio/mp4' })

/** The incremental path as a recorder uses it: push each chunk, swap in the header, append the tail. */
function incremental(input: Buffer, sizes: number[]) {
  const f = createMp4Finaliser()
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
  it('has no duration in mvhd, 1041 units in tkhd and mdhd (not its length), no sidx, and a moof+mdat per second', () => {
    const d = describeFile(raw)
    // Chromium writes mvhd 0 and 1041 into tkhd (1.041 s) and mdhd (0.02 s at 48 kHz).
    expect([d.movieS, d.trackS, d.mediaS]).toEqual([0, 1.041, 1041 / 48000])
    expect(d.sidx).toBeNull()
    expect(d.moofs.length).toBe(20)
    expect(about.chunks.reduce((a, b) => a + b, 0)).toBe(raw.length)
  })
})

describe('finaliseMp4 on the fixture', () => {
  it('writes durations within 1 % of the decoded length and a sidx whose references are the fragments', async () => {
    const out = await bytesOf(await finaliseMp4(mp4(raw)))
    const d = describeFile(out)
    for (const s of [d.movieS, d.trackS, d.mediaS])
      expect(Math.abs(s - about.decodedSeconds) / about.decodedSeconds).toBeLessThan(0.01)
    // The sidx is the last box before the first moof (Chromium ignores one that skips padding).
    expect(d.sidx!.end).toBe(d.moofs[0].start)
    expect(d.references.length).toBe(d.moofs.length)
    d.references.forEach((r, i) => {
      expect(r.offset).toBe(d.moofs[i].start)
      expect(r.time).toBe(tfdt(out, d.moofs[i]))
    })
    const last = d.references.at(-1)!
    expect(last.offset + last.size).toBe(out.length)
    expect((last.time + last.duration) / d.mediaScale).toBeCloseTo(d.mediaS, 6)
    // The audio itself is the input's, byte for byte, at a fixed shift.
    const f = createMp4Finaliser()
    f.push(raw)
    const final = f.finish()
    expect(out.subarray(f.headerLength!).equals(raw.subarray(final.inputDataStart))).toBe(true)
    expect(final.tail.length).toBe(0)
  })

  it('returns a non-MP4 blob, an empty one, a plain (not fragmented) MP4 and an already finalised file unchanged', async () => {
    const finalised = await finaliseMp4(mp4(raw))
    for (const blob of [
      new Blob([fs.readFileSync(path.join(dir, 'tone-5s.mp3'))], { type: 'audio/mpeg' }),
      new Blob([]),
      new Blob(['hello'], { type: 'audio/mp4' }),
      mp4(fs.readFileSync(path.join(dir, 'tone-5s.m4a'))),
      finalised,
    ])
      expect(await finaliseMp4(blob)).toBe(blob)
    expect(finalised.size).toBe(raw.length + 12977 - 641)
  })

  it("finalises ffmpeg's fragmented MP4 (AAC, another muxer) too", async () => {
    const other = fs.readFileSync(path.join(dir, 'tone-5s-fragmented.m4a'))
    const d = describeFile(await bytesOf(await finaliseMp4(mp4(other))))
    expect(Math.abs(d.mediaS - 5) / 5).toBeLessThan(0.01)
    expect(d.references.length).toBe(d.moofs.length)
  })
})

describe('the incremental finaliser', () => {
  const whole = finaliseMp4(mp4(raw)).then(bytesOf)
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
      expect(provisional.length).toBe(f.headerLength! + raw.length - final.inputDataStart)
      expect(f.bytesOut).toBe(provisional.length)
    })

  it("emits the header region with the recorder's second chunk (the first is ftyp+moov alone); the provisional file is the raw one plus a free box", () => {
    const f = createMp4Finaliser()
    expect(f.push(raw.subarray(0, about.chunks[0])).length).toBe(0)
    expect(f.headerLength).toBeNull()
    const second = f.push(raw.subarray(about.chunks[0], about.chunks[0] + about.chunks[1]))
    expect(second.length).toBe(f.headerLength! + about.chunks[1])
    const { provisional } = incremental(raw, about.chunks)
    const d = describeFile(provisional)
    expect(d.movieS).toBe(0)
    expect(d.sidx).toBeNull()
    expect(find(d.top, 'free')[0].end).toBe(d.moofs[0].start)
    expect(Buffer.concat([raw.subarray(0, 641), provisional.subarray(f.headerLength!)]).equals(raw)).toBe(true)
  })

  it('a recording of more fragments than the sidx holds: references cover several fragments, bookkeeping stays bounded', () => {
    // 2 600 fragments: the fixture's header, then its second fragment over and over with rising tfdt.
    const moof = raw.subarray(10897, 27515)
    const frags: Buffer[] = []
    const tfdtAt = 10949 - 10897 + 12
    for (let i = 0; i < 2600; i++) {
      const copy = Buffer.from(moof)
      copy.writeBigUInt64BE(BigInt(i * 48960), tfdtAt)
      frags.push(copy)
    }
    const long = Buffer.concat([raw.subarray(0, 641), ...frags])
    const f = createMp4Finaliser()
    const out: Uint8Array[] = []
    for (let at = 0; at < long.length; at += 1 << 20) out.push(f.push(long.subarray(at, at + (1 << 20))))
    expect((f as any).entries.length).toBeLessThan(2048)
    const final = f.finish()
    const bytes = Buffer.concat([final.header, Buffer.concat(out).subarray(f.headerLength!)])
    const d = describeFile(bytes)
    expect(final.header.length).toBe(f.headerLength)
    expect(d.references.length).toBeLessThanOrEqual(1024)
    expect(d.references.length).toBeGreaterThan(512)
    for (const r of d.references) expect(bytes.toString('latin1', r.offset + 4, r.offset + 8)).toBe('moof')
    const last = d.references.at(-1)!
    expect(last.offset + last.size).toBe(bytes.length)
    expect(d.mediaS).toBeCloseTo((2599 * 48960 + 47088) / 48000, 6)
  })

  it('refuses push() after finish() and finish() twice', () => {
    const f = createMp4Finaliser()
    f.push(raw)
    f.finish()
    expect(() => f.push(raw)).toThrow(/after finish/)
    expect(() => f.finish()).toThrow(/twice/)
  })
})

// --- hostile input -----------------------------------------------------------------------------

const box = (type: string, ...payload: (Buffer | number[])[]) => {
  const body = Buffer.concat(payload.map((p) => Buffer.from(p as Uint8Array)))
  const h = Buffer.alloc(8)
  h.writeUInt32BE(8 + body.length)
  h.write(type, 4, 'latin1')
  return Buffer.concat([h, body])
}
const sized = (type: string, size: number) => {
  const h = Buffer.alloc(8)
  h.writeUInt32BE(size)
  h.write(type, 4, 'latin1')
  return h
}
const be = (n: number, bytes = 4) => {
  const b = Buffer.alloc(bytes)
  if (bytes === 8) b.writeBigUInt64BE(BigInt(n))
  else b.writeUInt32BE(n)
  return b
}
const head = raw.subarray(0, 641)
const tfhd = (flags = 0x020000, ...rest: Buffer[]) => box('tfhd', be(flags), be(1), ...rest)
const trun = (durations: number[], count = durations.length) =>
  box('trun', be(0x000301), be(count), be(0), ...durations.flatMap((d) => [be(d), be(4)]))
const fragment = (time: number, durations = [960, 960], extra: Buffer[] = []) =>
  Buffer.concat([
    box(
      'moof',
      box('mfhd', be(0), be(1)),
      box('traf', tfhd(), box('tfdt', [1, 0, 0, 0], be(time, 8)), trun(durations)),
      ...extra,
    ),
    box('mdat', Buffer.alloc(4 * durations.length)),
  ])
const good = Buffer.concat([head, fragment(0), fragment(1920)])
function nested(depth: number) {
  let inner = box('abcd')
  const headers: Buffer[] = []
  let length = inner.length
  for (let i = 0; i < depth; i++) {
    length += 8
    headers.push(sized('abcd', length))
  }
  return Buffer.concat([...headers.reverse(), inner])
}

describe('hostile and broken input: a bounded answer, no hang', () => {
  const cases: [string, Buffer, string | null][] = [
    ['a minimal valid recording', good, null],
    ['truncated inside ftyp', raw.subarray(0, 20), 'truncated'],
    ['truncated before the first moof', raw.subarray(0, 641), 'truncated'],
    ['truncated inside an mdat', raw.subarray(0, 60000), 'truncated'],
    ['truncated inside a box header', Buffer.concat([good, Buffer.from([0, 0, 0])]), 'truncated'],
    ['a moof without its mdat at the end', Buffer.concat([good, fragment(3840).subarray(0, -24)]), 'truncated'],
    [
      'a moof without its mdat, then another moof',
      Buffer.concat([head, fragment(0, [960, 960, 960]).subarray(0, -20), fragment(1920)]),
      'malformed',
    ],
    // WebKit's stop(): the last moof twice, the first without its mdat; it counts nothing.
    [
      'the same moof twice, the first without its mdat',
      Buffer.concat([good, fragment(3840).subarray(0, -16), fragment(3840)]),
      null,
    ],
    ['not MP4 (an MP3)', fs.readFileSync(path.join(dir, 'tone-5s.mp3')), 'not_mp4'],
    ['a plain MP4 (mdat before any moof)', fs.readFileSync(path.join(dir, 'tone-5s.m4a')), 'unsupported'],
    ['a box of size 4', Buffer.concat([good, sized('free', 4)]), 'malformed'],
    ['a box of size 0 inside a moof', Buffer.concat([head, box('moof', sized('traf', 0))]), 'malformed'],
    [
      'a free box of size 0 (to the end) at the top',
      Buffer.concat([good, sized('free', 0), Buffer.alloc(100)]),
      'malformed',
    ],
    [
      'a last mdat of size 0 (to the end)',
      Buffer.concat([good.subarray(0, -16), sized('mdat', 0), Buffer.alloc(8)]),
      null,
    ],
    ['a 64-bit size of 2^64-1', Buffer.concat([good, sized('free', 1), Buffer.alloc(8, 0xff)]), 'too_large'],
    [
      'an mdat claiming 4 GiB that is not there',
      Buffer.concat([good, sized('mdat', 0xffffffff), Buffer.alloc(100)]),
      'truncated',
    ],
    [
      'a trun claiming 2^32-1 samples',
      Buffer.concat([head, box('moof', box('traf', tfhd(), trun([960], 0xffffffff))), box('mdat')]),
      'malformed',
    ],
    [
      'a child overrunning its moof',
      Buffer.concat([head, box('moof', sized('traf', 4000)), Buffer.alloc(4000)]),
      'malformed',
    ],
    ['100 000 nested boxes inside a moof', Buffer.concat([good, fragment(3840, [960], [nested(100_000)])]), null],
    [
      '100 000 empty free boxes between fragments',
      Buffer.concat([good, Buffer.alloc(800_000).fill(sized('free', 8)), fragment(3840)]),
      null,
    ],
    [
      'a tfhd with an absolute base data offset',
      Buffer.concat([head, box('moof', box('traf', tfhd(0x1, be(0, 8)), trun([960]))), box('mdat', be(0))]),
      'unsupported',
    ],
    [
      'fragments of another track only',
      Buffer.concat([
        head,
        box('moof', box('traf', box('tfhd', be(0x020000), be(7)), trun([960]))),
        box('mdat', be(0)),
      ]),
      'no_audio',
    ],
    ['a header box claiming 2 MiB', Buffer.concat([head, sized('uuid', 2 << 20)]), 'too_large'],
    ['times going backwards', Buffer.concat([head, fragment(96000), fragment(0)]), 'malformed'],
    ['a second moov in the body', Buffer.concat([good, raw.subarray(36, 641)]), 'malformed'],
  ]
  for (const [name, bytes, code] of cases)
    it(`${name}: ${code ?? 'finalised'}`, () =>
      expectFinaliserAnswer(bytes, code, {
        incremental: (b) => incremental(b, every(4096, b.length)),
        ErrorClass: Mp4FinaliseError,
        finalise: finaliseMp4,
        toBlob: mp4,
      }))
})

describe("the route's duration meter", () => {
  let s: Stack
  beforeAll(async () => {
    s = await startStack()
  })
  afterAll(() => s?.close())

  const measured = (audio: Buffer) => measuredByRoute(s, audio, 'audio/mp4', about.decodedSeconds * 1000)

  it('refuses the raw file (its mdhd claims 0.02 s) and measures the finalised one within 1 % of the durations written', async () => {
    const id = await s.session('user_alice', null, { status: 'recording' })
    const res = await s.post(id, raw, {
      token: await s.clerk.sessionToken({ sub: 'user_alice' }),
      headers: { 'x-duration-ms': '19941', 'x-content-type': 'audio/mp4', 'content-length': String(raw.length) },
    })
    expect(res.status).toBe(400)
    expect((await res.json()).error.code).toBe('inconsistent_audio')
    const finalised = await bytesOf(await finaliseMp4(mp4(raw)))
    const after = await measured(finalised)
    expect(Math.abs(describeFile(finalised).movieS * 1000 - after) / after).toBeLessThan(0.01)
    expect(Math.abs(after / 1000 - about.decodedSeconds) / about.decodedSeconds).toBeLessThan(0.01)
  })
})

// WebKit's MediaRecorder (WebKitGTK 2.50, `audio/mp4`, AAC at 44.1 kHz): two ftyp boxes, every
// duration 0, a moof+mdat a second, and the part-fragment written at stop() with its moof twice.
const WEBKIT = 'webkit-20s.m4a'
const webkit = fs.readFileSync(path.join(dir, WEBKIT))
const webkitAbout: { decodedSeconds: number; chunks: number[] } = JSON.parse(
  fs.readFileSync(path.join(dir, `${WEBKIT}.json`), 'utf8'),
)

describe("WebKit's MediaRecorder MP4 (webkit-20s.m4a)", () => {
  let s: Stack
  beforeAll(async () => {
    s = await startStack()
  })
  afterAll(() => s?.close())

  it('starts with two ftyp boxes, has no durations, and repeats its last moof without an mdat', () => {
    const top = parse(webkit)
    expect(top.slice(0, 3).map((b) => b.type)).toEqual(['ftyp', 'ftyp', 'moov'])
    const d = describeFile(webkit)
    expect([d.movieS, d.trackS, d.mediaS]).toEqual([0, 0, 0])
    expect(top.slice(-3).map((b) => b.type)).toEqual(['moof', 'moof', 'mdat'])
    const [a, b] = top.slice(-3)
    expect(webkit.subarray(a.start, a.end).equals(webkit.subarray(b.start, b.end))).toBe(true)
    expect(webkitAbout.chunks.reduce((x, y) => x + y, 0)).toBe(webkit.length)
  })

  it('finaliseMp4 writes durations within 1 % of the decoded length, and a sidx over the fragments (the repeated moof counts once)', async () => {
    const out = await bytesOf(await finaliseMp4(mp4(webkit)))
    const d = describeFile(out)
    for (const x of [d.movieS, d.trackS, d.mediaS])
      expect(Math.abs(x - webkitAbout.decodedSeconds) / webkitAbout.decodedSeconds).toBeLessThan(0.01)
    expect(d.sidx!.end).toBe(d.moofs[0].start)
    // Every moof but the first of the pair starts a reference.
    const referenced = d.moofs.filter((_, i) => i !== d.moofs.length - 2)
    expect(d.references.map((r) => r.offset)).toEqual(referenced.map((m) => m.start))
    const last = d.references.at(-1)!
    expect(last.offset + last.size).toBe(out.length)
    // With the recorder's chunking, the same bytes.
    expect(incremental(webkit, webkitAbout.chunks).bytes.equals(out)).toBe(true)
  })

  it('repairRepeatedMoof turns the first of the pair into padding in the chunk that holds it; the finaliser agrees', async () => {
    const lastChunk = Buffer.from(webkit.subarray(webkit.length - webkitAbout.chunks.at(-1)!))
    const repaired = Buffer.from(repairRepeatedMoof(Uint8Array.from(lastChunk)))
    const types = parse(repaired).map((b) => b.type)
    expect(types.slice(-3)).toEqual(['free', 'moof', 'mdat'])
    expect(repaired.length).toBe(lastChunk.length)
    // A chunk without a repeat is left as it is.
    const first = Uint8Array.from(webkit.subarray(0, webkitAbout.chunks[0] + webkitAbout.chunks[1]))
    expect(Buffer.from(repairRepeatedMoof(first.slice())).equals(Buffer.from(first))).toBe(true)
    const whole = Buffer.concat([webkit.subarray(0, webkit.length - lastChunk.length), repaired])
    const a = describeFile(await bytesOf(await finaliseMp4(mp4(whole))))
    const b = describeFile(await bytesOf(await finaliseMp4(mp4(webkit))))
    expect(a.mediaS).toBe(b.mediaS)
  })

  it("the route's meter measures the raw and the finalised file within 1 % of the decoded length", async () => {
    const decodedMs = webkitAbout.decodedSeconds * 1000
    for (const file of [webkit, await bytesOf(await finaliseMp4(mp4(webkit)))]) {
      const ms = await measuredByRoute(s, file, 'audio/mp4', decodedMs)
      expect(Math.abs(ms - decodedMs) / decodedMs).toBeLessThan(0.01)
    }
  })
})
