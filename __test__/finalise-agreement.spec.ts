// The route's header writer (crates/core/src/media/finalise) against the recorder's finalisers
// (client/finalise, the oracle): for every recorder fixture, whole and cut where a crash would cut
// it, the provisional file the recorder uploads (provisional header region, the recording, the
// WebM Cues `finish()` appended) must get from the route exactly the header region `finish()`
// writes, byte for byte. And what is not a provisional file the writer recognises exactly (the
// raw recording, the final file, Cues that do not match the Clusters, a header altered by a byte)
// gets no header at all: the route then stores the blob as it is.
//
// The writer is reached through the addon's test-hooks-only export `testFinalHeader` (src/test_hooks.rs):
// it is in the test build's native module, not in binding.js, so it is loaded from the module itself.
import fs from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { createMp4Finaliser } from '../client/finalise/mp4.mjs'
import { createWebmFinaliser } from '../client/finalise/webm.mjs'
import { longMp4, WEBKIT_MP4 } from '../benchmark/lib/long-mp4.mjs'
import { longWebm, tinyClusterWebm } from '../benchmark/lib/long-webm.mjs'
import { describeMp4, describeWebm, ebmlUint, findEls } from './finalised-files'
import { finalisedForms as forms, fixture } from './helpers'

const repo = path.resolve(__dirname, '..')
const addon = fs.readdirSync(repo).find((f) => /^session-audio\..*\.node$/.test(f))
if (!addon) throw new Error('no addon built in the repository root (scripts/ensure-built.sh)')
const native = createRequire(import.meta.url)(path.join(repo, addon)) as {
  testFinalHeader?: (body: Uint8Array, essence: string) => Buffer | null
}
if (!native.testFinalHeader) throw new Error('the addon was built without --features test-hooks')
const routeHeader = (body: Uint8Array, essence: string) => {
  const out = native.testFinalHeader!(body, essence)
  return out === null ? null : new Uint8Array(out)
}

const concat = (...parts: Uint8Array[]) => Buffer.concat(parts.map((p) => Buffer.from(p)))

/** `raw` cut where a crash after `bytes` would leave it: the finaliser's `completeBytes`. */
function cut(raw: Uint8Array, bytes: number, create: () => any) {
  const f = create()
  f.push(raw.subarray(0, bytes))
  const at = f.completeBytes as number | null
  return at === null ? null : raw.subarray(0, at)
}

const recordings = [
  { name: 'chromium-20s-timeslice.webm', essence: 'audio/webm', create: createWebmFinaliser },
  { name: 'tone-5s-live.webm', essence: 'audio/webm', create: createWebmFinaliser },
  { name: 'chromium-20s-timeslice.m4a', essence: 'audio/mp4', create: createMp4Finaliser },
  { name: 'webkit-20s.m4a', essence: 'audio/mp4', create: createMp4Finaliser },
  { name: 'tone-5s-fragmented.m4a', essence: 'audio/mp4', create: createMp4Finaliser },
]

describe('the route writes the header region finish() writes', () => {
  for (const r of recordings) {
    const raw = new Uint8Array(fixture(r.name))
    const versions: [string, Uint8Array][] = [['whole', raw]]
    for (const share of [0.2, 0.5, 0.8]) {
      const c = cut(raw, Math.floor(raw.length * share), r.create)
      if (c) versions.push([`cut at ${Math.round(share * 100)} %`, c])
    }
    for (const [label, bytes] of versions) {
      it(`${r.name}, ${label}: the same bytes; nothing for the raw or the final file`, () => {
        const f = forms(bytes, r.create)
        const got = routeHeader(f.provisional, r.essence)
        expect(got, 'a provisional file the writer did not recognise').not.toBeNull()
        expect(Buffer.from(got!).equals(Buffer.from(f.header))).toBe(true)
        expect(got!.length).toBe(f.headerLength)
        // Already final, or never finalised: stored as it is.
        expect(routeHeader(f.final, r.essence)).toBeNull()
        expect(routeHeader(bytes, r.essence)).toBeNull()
      })
    }
  }

  it('a long WebM (3 min, 180 clusters) and a long one cut mid-way agree too', () => {
    const long = longWebm(3).bytes as Uint8Array
    for (const bytes of [long, cut(long, Math.floor(long.length * 0.6), createWebmFinaliser)!]) {
      const f = forms(bytes, createWebmFinaliser)
      const got = routeHeader(f.provisional, 'audio/webm')
      expect(got && Buffer.from(got).equals(Buffer.from(f.header))).toBe(true)
    }
  })
})

// Past the finalisers' caps: at most 65 536 CuePoints (WebM: then every other one goes and the
// stride doubles) and at most 1 024 sidx references over at most 2 048 fragment positions kept while
// walking (MP4: the same halving, then halved again at finish() until ≤ 1 024). Chromium's MP4
// recorder writes a fragment a `timeslice` chunk, so a recording of 17 minutes at one a second is
// past the sidx's cap and one of 34 minutes past the walk's. Each count is the finalisers' rule
// worked by hand: a recording of `n` fragments or clusters gets `kept` references or CuePoints,
// the first of them covering `first` fragments or clusters (the stride at the end).
describe('past the caps, the route writes the header region finish() writes, and the file is valid', () => {
  /** The route's header for `raw`'s provisional form is finish()'s; returns the final file. */
  function agreed(raw: Uint8Array, create: () => any, essence: string) {
    const f = forms(raw, create)
    const got = routeHeader(f.provisional, essence)
    expect(got, 'a provisional file the writer did not recognise').not.toBeNull()
    expect(Buffer.from(got!).equals(Buffer.from(f.header))).toBe(true)
    return { ...f, final: Buffer.from(f.final) }
  }

  /** `built` (from longMp4) through both sides: `kept` references, each over `first` fragments. */
  function expectSidx(built: ReturnType<typeof longMp4>, kept: number, first: number) {
    const { final, headerLength } = agreed(built.bytes, createMp4Finaliser, 'audio/mp4')
    const d = describeMp4(final)
    // The final file is the built one at a fixed shift: the fragments moved by the header's change.
    const shift = headerLength - built.headerLength
    expect(d.sidx!.end).toBe(headerLength)
    expect(d.references.length).toBe(kept)
    let covered = 0
    d.references.forEach((r, i) => {
      // Each reference starts at a (counted) moof, every `first`-th, and at that fragment's time.
      const k = i * first
      expect(r.offset).toBe(built.moofs[k] + shift)
      expect(final.toString('latin1', r.offset + 4, r.offset + 8)).toBe('moof')
      expect(r.time).toBe(built.times[k])
      covered += r.size
    })
    // Sizes sum to the bytes after the sidx; durations to the track's length (its mdhd).
    expect(covered).toBe(final.length - d.sidx!.end)
    const last = d.references.at(-1)!
    expect(last.time + last.duration - d.references[0].time).toBe(built.units)
    expect(d.mediaS * d.mediaScale).toBeCloseTo(built.units, 3)
    // Every reference starts with a SAP of type 1 and is media (not another sidx).
    const at = d.sidx!.dataStart + 32
    for (let i = 0; i < kept; i++) {
      expect(final[at + 12 * i] >> 7).toBe(0)
      expect(final.readUInt32BE(at + 12 * i + 8)).toBe(0x90000000)
    }
  }

  const mp4Table = [
    { fragments: 1024, kept: 1024, first: 1 }, // exactly the cap: one reference a fragment
    { fragments: 1025, kept: 513, first: 2 },
    { fragments: 2047, kept: 1024, first: 2 }, // the walk keeps all 2 047; finish() halves them
    { fragments: 2048, kept: 1024, first: 2 }, // the walk halves at its 2 048th position
    { fragments: 2049, kept: 513, first: 4 },
    { fragments: 4100, kept: 513, first: 8 }, // the walk halves twice (68 minutes at 1 s)
  ]
  for (const [label, file] of [
    ['Chromium', undefined],
    ['WebKit (its last moof written twice)', WEBKIT_MP4],
  ] as const) {
    for (const { fragments, kept, first } of mp4Table) {
      it(`MP4, ${label}, ${fragments} fragments: ${kept} sidx references over the fragments, summing to the file`, () => {
        // One sample a fragment keeps the file small (4 MB for 4 100); the walk is the same.
        expectSidx(longMp4(fragments, { file, samples: 1 }), kept, first)
      })
    }
  }

  it('MP4, Chromium, 35 minutes of its whole fragments (34 MB, 2 100 fragments): 525 references of 4', () => {
    expectSidx(longMp4(2100), 525, 4)
  })

  it('MP4 past both caps and cut where a crash would cut it: still the same bytes', () => {
    const built = longMp4(4100, { samples: 1 }).bytes
    const c = cut(built, Math.floor(built.length * 0.7), createMp4Finaliser)!
    const d = describeMp4(agreed(c, createMp4Finaliser, 'audio/mp4').final)
    expect(d.references.length).toBeLessThanOrEqual(1024)
  })

  const webmTable = [
    { clusters: 65_536, kept: 65_536, first: 1 }, // exactly the cap: a CuePoint a Cluster
    { clusters: 65_537, kept: 32_769, first: 2 },
    { clusters: 131_100, kept: 32_775, first: 4 }, // halved twice (2 h 11 min of 60 ms Clusters)
  ]
  for (const { clusters, kept, first } of webmTable) {
    it(`WebM, ${clusters} Clusters: ${kept} CuePoints, each at a Cluster's start and time`, () => {
      const built = tinyClusterWebm(clusters)
      const { final, headerLength } = agreed(built.bytes, createWebmFinaliser, 'audio/webm')
      // The Clusters are the built ones at a fixed shift (the header region changed length), all
      // of them whole; the Cues follow the last one, the Segment ends with them.
      const shift = headerLength - built.clusterStarts[0]
      const d = describeWebm(final)
      expect(d.clusters.map((c) => c.start)).toEqual(built.clusterStarts.map((at) => at + shift))
      expect(d.segment.end).toBe(final.length)
      expect(d.durationS! * 1000).toBeCloseTo(built.durationMs, 6)
      // The SeekHead's Cues entry is where the Cues are: right after the last Cluster, to the end.
      const seg = d.segment.dataStart
      const seeks = findEls(d.seekHead!.children, 0x4dbb)
      const cuesSeek = seeks.find((s) => final.readUInt32BE(findEls(s.children, 0x53ab)[0].dataStart) === 0x1c53bb6b)!
      const cues = d.cues!
      expect(seg + ebmlUint(final, findEls(cuesSeek.children, 0x53ac)[0])).toBe(cues.start)
      expect(cues.start).toBe(built.bytes.length + shift)
      expect(cues.end).toBe(final.length)
      const points = findEls(cues.children, 0xbb)
      expect(points.length).toBe(kept)
      const step = built.durationMs / clusters
      points.forEach((p, i) => {
        const k = i * first
        const pos = findEls(p.children, 0xb7)[0]
        expect(seg + ebmlUint(final, findEls(pos.children, 0xf1)[0])).toBe(built.clusterStarts[k] + shift)
        expect(ebmlUint(final, findEls(p.children, 0xb3)[0])).toBe(k * step)
      })
    })
  }

  it('WebM past the cap twice and cut where a crash would cut it: still the same bytes', () => {
    const built = tinyClusterWebm(131_100).bytes
    const c = cut(built, Math.floor(built.length * 0.8), createWebmFinaliser)!
    agreed(c, createWebmFinaliser, 'audio/webm')
  })
})

describe('what the client claims is checked, never taken', () => {
  const webm = forms(new Uint8Array(fixture('chromium-20s-timeslice.webm')), createWebmFinaliser)
  const mp4 = forms(new Uint8Array(fixture('chromium-20s-timeslice.m4a')), createMp4Finaliser)

  it('WebM Cues that do not match the Clusters, or none, or bytes after them: no header', () => {
    const p = webm.provisional
    const cuesAt = p.length - webm.tail.length
    const altered = new Uint8Array(p)
    altered[p.length - 1] ^= 0x01 // the last CueClusterPosition's last byte
    const noCues = p.subarray(0, cuesAt)
    const after = concat(p, Uint8Array.of(0xec, 0x80)) // an empty Void after the Cues
    const twice = concat(p, webm.tail)
    for (const body of [altered, noCues, after, twice]) expect(routeHeader(body, 'audio/webm')).toBeNull()
    expect(routeHeader(p, 'audio/webm')).not.toBeNull()
  })

  it('a header region altered by one byte (outside what the finaliser rewrites) gets no header', () => {
    for (const [f, essence] of [
      [webm, 'audio/webm'],
      [mp4, 'audio/mp4'],
    ] as const) {
      // The last byte of the reserve (a Void's or a free box's payload: zero in the provisional one).
      const p = new Uint8Array(f.provisional)
      p[f.headerLength - 1] = 0x55
      expect(routeHeader(p, essence)).toBeNull()
      // The declared type decides the writer: an MP4 declared as WebM, and the reverse, get none.
      expect(routeHeader(f.provisional, essence === 'audio/webm' ? 'audio/mp4' : 'audio/webm')).toBeNull()
    }
  })

  it('a hostile WebM Cues size (2^40) or MP4 moof size is refused in time bounded by the bytes', () => {
    const p = new Uint8Array(webm.provisional)
    const cuesAt = p.length - webm.tail.length
    // The Cues' size as an 8-byte vint of 2^40 in place of the real one (the file does not grow).
    const hostile = concat(
      p.subarray(0, cuesAt + 4),
      Uint8Array.of(0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00),
      p.subarray(cuesAt + 4 + 8),
    )
    const m = new Uint8Array(mp4.provisional)
    new DataView(m.buffer).setUint32(mp4.headerLength, 0xfffffff0) // the first moof claims 4 GiB
    const started = performance.now()
    expect(routeHeader(hostile, 'audio/webm')).toBeNull()
    expect(routeHeader(m, 'audio/mp4')).toBeNull()
    expect(performance.now() - started).toBeLessThan(2000)
  })
})
