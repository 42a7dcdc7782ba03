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
import { longWebm } from '../benchmark/lib/long-webm.mjs'
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
