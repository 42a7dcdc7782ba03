// The completion's rewrite (docs/stop-to-transcribing.md, option C): a recording uploaded with the
// recorder's PROVISIONAL header region (part 1 went up while recording) is completed into a new,
// final blob at the derived pathname (`….final.webm`), whose bytes are exactly what
// client/finalise's `finish()` makes of the recording; the session holds it, the provisional blob
// is deleted, and a replayed completion of the provisional URL is answered from the session.
// What is not a provisional upload the route recognises is attached as it is; a store failing
// mid-rewrite keeps the provisional blob and answers a retryable 503 (the retry rewrites it).
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { upload } from '@vercel/blob/client'
import { createAudioHandlers, type AudioOptions } from '../index.js'
import { createMp4Finaliser } from '../client/finalise/mp4.mjs'
import { createWebmFinaliser } from '../client/finalise/webm.mjs'
import { longWebm } from '../benchmark/lib/long-webm.mjs'
import { errorOf, finalisedForms as forms, fixture, startRouteStack, type Stack } from './helpers'

let s: Stack
let route: { url: string }
let close: () => Promise<void>
let alice: string
const handlers: Record<string, unknown> = {}

beforeAll(async () => {
  ;({ s, route, close } = await startRouteStack(handlers))
  alice = await s.clerk.sessionToken({ sub: 'user_alice' })
  use()
})
afterAll(() => close())

const use = (extra: AudioOptions = {}) =>
  Object.assign(handlers, createAudioHandlers(s.options({ blobCallbackUrl: route.url, ...extra })))
const recording = () => s.session('user_alice', null, { status: 'recording' })
const audioRoute = (id: string) => `${route.url}/api/listening-sessions/${id}/audio`

const kinds = {
  webm: {
    type: 'audio/webm',
    ext: 'webm',
    f: () => forms(fixture('chromium-20s-timeslice.webm'), createWebmFinaliser),
  },
  mp4: { type: 'audio/mp4', ext: 'm4a', f: () => forms(fixture('chromium-20s-timeslice.m4a'), createMp4Finaliser) },
}

/** A client upload of `bytes` (webhooks held: the browser's completion is the one under test). */
async function clientUpload(id: string, bytes: Buffer, type: string, ext: string, durationMs: number) {
  s.blob.state.holdWebhooks = true
  return upload(`listening-sessions/${id}/take.${ext}`, new Blob([bytes], { type }), {
    access: 'private',
    handleUploadUrl: audioRoute(id),
    headers: { authorization: `Bearer ${alice}` },
    clientPayload: JSON.stringify({ durationMs: Math.round(durationMs), contentType: type }),
    contentType: type,
    multipart: bytes.length > 6 * 1024 * 1024,
  })
}

function complete(id: string, url: string) {
  return fetch(audioRoute(id), {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${alice}` },
    body: JSON.stringify({ type: 'session-audio.complete-upload', payload: { url } }),
  })
}

const finalPath = (pathname: string) => pathname.replace(/(\.[^./]+)$/, '.final$1')

describe('a provisional upload is completed into the final file', () => {
  for (const [name, k] of Object.entries(kinds)) {
    it(`${name}: the attached blob is finish()'s bytes at the derived pathname; the provisional one is gone; a replay answers from the session`, async () => {
      use()
      const f = k.f()
      const id = await recording()
      const blob = await clientUpload(id, f.provisional, k.type, k.ext, f.durationMs)
      const res = await complete(id, blob.url)
      expect(res.status, JSON.stringify(await res.clone().json())).toBe(201)
      const answer = await res.json()
      expect(answer.pathname).toBe(finalPath(blob.pathname))
      const doc = await s.convex.getSession(id)
      expect([doc.status, doc.audioPathname, doc.sizeBytes ?? doc.audioSizeBytes]).toEqual([
        'transcribing',
        finalPath(blob.pathname),
        f.final.length,
      ])
      expect(s.blob.read(finalPath(blob.pathname)).equals(f.final)).toBe(true)
      expect(s.blob.list()).not.toContain(blob.pathname)
      // A replay of the provisional URL (the client's retry, Blob's webhook): the session's record.
      const again = await complete(id, blob.url)
      expect(again.status).toBe(200)
      expect((await again.json()).pathname).toBe(finalPath(blob.pathname))
      s.blob.state.holdWebhooks = false
    })
  }

  it('a recording over one server part (8 MiB): parts 2… go up during the read, the file is the same bytes', async () => {
    use()
    const f = forms(longWebm(10).bytes, createWebmFinaliser)
    expect(f.provisional.length).toBeGreaterThan(8 * 1024 * 1024)
    const id = await recording()
    const blob = await clientUpload(id, f.provisional, 'audio/webm', 'webm', f.durationMs)
    const before = s.blob.multipart.length
    const res = await complete(id, blob.url)
    expect(res.status).toBe(201)
    const mpu = s.blob.multipart.slice(before).find((m: any) => m.stored === finalPath(blob.pathname))
    expect(mpu.parts.map((p: any) => p.size).sort((a: number, b: number) => b - a)[0]).toBe(8 * 1024 * 1024)
    expect(s.blob.read(finalPath(blob.pathname)).equals(f.final)).toBe(true)
    expect(s.blob.list()).not.toContain(blob.pathname)
    s.blob.state.holdWebhooks = false
  })
})

describe('what is not rewritten is attached as it is', () => {
  const cases: [string, () => { bytes: Buffer; ms: number }][] = [
    ['an already final WebM', () => ({ bytes: kinds.webm.f().final, ms: kinds.webm.f().durationMs })],
    [
      'a provisional WebM whose header region was altered by a byte',
      () => {
        const f = kinds.webm.f()
        const b = Buffer.from(f.provisional)
        b[f.headerLength - 1] = 0x55
        return { bytes: b, ms: f.durationMs }
      },
    ],
    [
      'a provisional WebM whose Cues do not match its Clusters',
      () => {
        const f = kinds.webm.f()
        const b = Buffer.from(f.provisional)
        b[b.length - 1] ^= 1
        return { bytes: b, ms: f.durationMs }
      },
    ],
    [
      'a provisional WebM whose Cues claim 2^40 bytes (work bounded by the bytes stored)',
      () => {
        const f = kinds.webm.f()
        const p = Buffer.from(f.provisional)
        // The Cues are the last element: their ID, found from the end, then an 8-byte size of 2^40.
        const at = p.lastIndexOf(Buffer.from([0x1c, 0x53, 0xbb, 0x6b]))
        const hostile = Buffer.concat([
          p.subarray(0, at + 4),
          Buffer.from([0x01, 0, 0, 1, 0, 0, 0, 0]),
          p.subarray(at + 12),
        ])
        return { bytes: hostile, ms: f.durationMs }
      },
    ],
  ]
  for (const [what, make] of cases) {
    it(`${what}: attached at its own pathname, nothing written beside it`, async () => {
      use()
      const { bytes, ms } = make()
      const id = await recording()
      const blob = await clientUpload(id, bytes, 'audio/webm', 'webm', ms)
      const before = s.blob.multipart.length
      const res = await complete(id, blob.url)
      expect(res.status).toBe(201)
      const doc = await s.convex.getSession(id)
      expect([doc.status, doc.audioUrl]).toEqual(['transcribing', blob.url])
      expect(s.blob.list()).toContain(blob.pathname)
      expect(s.blob.list()).not.toContain(finalPath(blob.pathname))
      expect(s.blob.multipart.length).toBe(before)
      s.blob.state.holdWebhooks = false
    })
  }
})

describe('Blob failing mid-rewrite keeps the audio', () => {
  for (const kind of ['mpu-create', 'mpu-part', 'mpu-complete']) {
    it(`${kind} failing: 503 storage_failed, the provisional blob kept, the session recording; the retry rewrites and attaches`, async () => {
      use()
      const f = kinds.webm.f()
      const id = await recording()
      const blob = await clientUpload(id, f.provisional, 'audio/webm', 'webm', f.durationMs)
      use()
      s.blob.state.fail = { status: 503, code: 'service_unavailable', kind, sticky: true }
      let res: Response
      try {
        res = await complete(id, blob.url)
      } finally {
        s.blob.state.fail = null
      }
      const e = await errorOf(res)
      expect([e.status, e.code, e.final]).toEqual([503, 'storage_failed', false])
      expect(s.blob.list()).toContain(blob.pathname)
      expect((await s.convex.getSession(id)).status).toBe('recording')
      const again = await complete(id, blob.url)
      expect(again.status).toBe(201)
      expect(s.blob.read(finalPath(blob.pathname)).equals(f.final)).toBe(true)
      expect(s.blob.list()).not.toContain(blob.pathname)
      s.blob.state.holdWebhooks = false
    })
  }
})
