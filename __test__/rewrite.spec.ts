// The completion's rewrite (docs/stop-to-transcribing.md, option C): a recording uploaded with the
// recorder's PROVISIONAL header region (part 1 went up while recording) is completed into a new,
// final blob at the derived pathname (`….final.webm`), whose bytes are exactly what
// client/finalise's `finish()` makes of the recording; the session holds it, the provisional blob
// is deleted, and a replayed completion of the provisional URL is answered from the session.
// What is not a provisional upload the route recognises is attached as it is; a store failing
// mid-rewrite keeps the provisional blob and answers a retryable 503 (the retry rewrites it).
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { upload } from '@vercel/blob/client'
import { createAudioHandlers, sweepOrphanAudio, type AudioOptions } from '../index.js'
import { createMp4Finaliser } from '../client/finalise/mp4.mjs'
import { createWebmFinaliser } from '../client/finalise/webm.mjs'
import { longWebm } from '../benchmark/lib/long-webm.mjs'
import { errorOf, finalisedForms as forms, fixture, startRouteStack, storeDated, type Stack } from './helpers'

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

/** One completion with a fault armed by `arm` (Blob's and Convex's both cleared after it): its error. */
async function completeFaulted(id: string, url: string, arm: () => void) {
  arm()
  try {
    return await errorOf(await complete(id, url))
  } finally {
    s.blob.state.fail = null
    s.convex.state.fail = null
  }
}

const finalPath = (pathname: string) => pathname.replace(/(\.[^./]+)$/, '.final$1')

/** A recording session holding a provisional WebM client upload, not completed yet. */
async function provisionalWebm() {
  use()
  const f = kinds.webm.f()
  const id = await recording()
  const blob = await clientUpload(id, f.provisional, 'audio/webm', 'webm', f.durationMs)
  return { f, id, blob }
}

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

  it('a recording over one server part (8 MiB): part 1 goes up early (WebM), the file is the same bytes', async () => {
    use()
    const f = forms(longWebm(10).bytes, createWebmFinaliser)
    expect(f.provisional.length).toBeGreaterThan(8 * 1024 * 1024)
    const id = await recording()
    const blob = await clientUpload(id, f.provisional, 'audio/webm', 'webm', f.durationMs)
    const before = s.blob.multipart.length
    const reads = s.blob.calls.read
    const res = await complete(id, blob.url)
    expect(res.status).toBe(201)
    // The first bytes (the container check), the last MiB (the header guessed), the whole read.
    expect(s.blob.calls.read - reads).toBe(3)
    const mpu = s.blob.multipart.slice(before).find((m: any) => m.stored === finalPath(blob.pathname))
    expect(mpu.parts.map((p: any) => p.size).sort((a: number, b: number) => b - a)[0]).toBe(8 * 1024 * 1024)
    // WebM: part 1 went up during the read, with the header region guessed from the file's end,
    // once: the whole read confirmed it (it was not sent again with the last part).
    const one = mpu.parts.filter((p: any) => p.partNumber === 1)
    const last = mpu.parts.find((p: any) => p.partNumber === 2)
    expect(one.length).toBe(1)
    expect(one[0].receivedAt).toBeLessThanOrEqual(last.startedAt)
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
      const e = await completeFaulted(
        id,
        blob.url,
        () => (s.blob.state.fail = { status: 503, code: 'service_unavailable', kind, sticky: true }),
      )
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

describe('a rewrite retried after its attach failed', () => {
  it('Convex failing the attach: 503, both blobs kept; the retry (a new instance) writes over its own .final and attaches', async () => {
    const { f, id, blob } = await provisionalWebm()
    use()
    const e = await completeFaulted(id, blob.url, () => (s.convex.state.fail = { status: 503, kind: 'mutation' }))
    expect([e.status, e.code, e.final]).toEqual([503, 'convex_unavailable', false])
    expect(s.blob.list()).toEqual(expect.arrayContaining([blob.pathname, finalPath(blob.pathname)]))
    expect((await s.convex.getSession(id)).status).toBe('recording')
    // A new instance measures and rewrites again: its multipart upload lands where the first one
    // did, which the store allows only if every call of it (the complete too) says overwrite.
    use()
    const again = await complete(id, blob.url)
    expect(again.status, JSON.stringify(await again.clone().json())).toBe(201)
    expect(s.blob.read(finalPath(blob.pathname)).equals(f.final)).toBe(true)
    expect(s.blob.list()).not.toContain(blob.pathname)
    s.blob.state.holdWebhooks = false
  })
})

describe('rewrites in flight are bounded (each holds up to 17 MiB)', () => {
  // complete.rs REWRITES_IN_FLIGHT: one more completion than that, while the others hold their
  // permits (their parts slowed), is answered 503 rewrites_busy with Retry-After; its blob kept.
  const IN_FLIGHT = 8
  it('one completion past the bound: 503 rewrites_busy, Retry-After, the provisional blob kept, the session recording; its retry attaches', async () => {
    use()
    const f = kinds.webm.f()
    const ids: string[] = []
    const blobs: { url: string; pathname: string }[] = []
    for (let i = 0; i <= IN_FLIGHT; i++) {
      const id = await recording()
      ids.push(id)
      blobs.push(await clientUpload(id, f.provisional, 'audio/webm', 'webm', f.durationMs))
    }
    s.blob.state.partLatencyMs = 1500
    let answers: Response[]
    try {
      answers = await Promise.all(ids.map((id, i) => complete(id, blobs[i].url)))
    } finally {
      s.blob.state.partLatencyMs = 0
    }
    const statuses = answers.map((r) => r.status)
    expect(statuses.filter((st) => st === 201).length, JSON.stringify(statuses)).toBe(IN_FLIGHT)
    const busy = statuses.indexOf(503)
    expect(busy).toBeGreaterThanOrEqual(0)
    expect(answers[busy].headers.get('retry-after')).toBe('5')
    const e = await errorOf(answers[busy])
    expect([e.status, e.code, e.final]).toEqual([503, 'rewrites_busy', false])
    expect(s.blob.list()).toContain(blobs[busy].pathname)
    expect(s.blob.list()).not.toContain(finalPath(blobs[busy].pathname))
    expect((await s.convex.getSession(ids[busy])).status).toBe('recording')
    // The permits are back: the retry rewrites and attaches.
    const again = await complete(ids[busy], blobs[busy].url)
    expect(again.status).toBe(201)
    expect(s.blob.read(finalPath(blobs[busy].pathname)).equals(f.final)).toBe(true)
    expect(s.blob.list()).not.toContain(blobs[busy].pathname)
    s.blob.state.holdWebhooks = false
  })
})

describe('a blob and its .final rewrite take one turn', () => {
  // A hostile client may complete the route's own .final blob by URL, beside a completion of the
  // provisional one that declares a wrong duration (refused about the audio: both blobs deleted).
  // Run side by side, the .final one could attach first and the refusal then delete what the
  // session holds. One turn for both: whatever the order, the session never holds a deleted blob.
  it('the .final URL completed beside a refused completion of the provisional one: the session holds a blob that exists, or none', async () => {
    const { f, id, blob } = await provisionalWebm()
    // A first completion rewrites, then Convex fails the attach: both blobs are kept.
    s.convex.state.fail = { status: 503, kind: 'mutation', sticky: true }
    try {
      expect((await complete(id, blob.url)).status).toBe(503)
    } finally {
      s.convex.state.fail = null
    }
    expect(s.blob.list()).toContain(finalPath(blob.pathname))
    use() // another instance: nothing measured yet, so the retry rewrites again (slowly)
    const finalUrl = blob.url.replace(blob.pathname, finalPath(blob.pathname))
    const lying = () =>
      fetch(audioRoute(id), {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${alice}` },
        body: JSON.stringify({
          type: 'session-audio.complete-upload',
          payload: { url: blob.url, durationMs: String(Math.round(f.durationMs / 4)) },
        }),
      })
    s.blob.state.partLatencyMs = 1000
    let answers: Response[]
    try {
      const refused = lying()
      await new Promise((r) => setTimeout(r, 300))
      answers = await Promise.all([refused, complete(id, finalUrl)])
    } finally {
      s.blob.state.partLatencyMs = 0
    }
    expect(answers[0].status).toBe(400)
    const doc = await s.convex.getSession(id)
    if (doc.status === 'transcribing') expect(s.blob.list()).toContain(doc.audioPathname)
    // One turn: the refusal ran first and deleted both; the .final completion then found nothing.
    expect([doc.status, answers[1].status]).toEqual(['recording', 404])
    expect(s.blob.list()).not.toContain(blob.pathname)
    expect(s.blob.list()).not.toContain(finalPath(blob.pathname))
    s.blob.state.holdWebhooks = false
  })
})

describe('the Convex template and the sweep tell the two blobs apart', () => {
  it('a provisional blob the route could not delete is an orphan for sweepOrphanAudio; the attached .final one is kept', async () => {
    const { blob, id } = await provisionalWebm()
    expect((await complete(id, blob.url)).status).toBe(201)
    s.blob.state.holdWebhooks = false
    // As if the delete after the attach had failed: the provisional pathname stored again, both old.
    const DAY = 86_400_000
    const left = await storeDated(s, blob.pathname, 2 * DAY)
    s.blob.meta.get(finalPath(blob.pathname)).uploadedAt = new Date(Date.now() - 2 * DAY).toISOString()
    process.env.SESSION_AUDIO_SWEEP_SECRET = 'sweep-secret-for-tests'
    try {
      const report = await sweepOrphanAudio({
        ...s.options(),
        sweepSecret: 'sweep-secret-for-tests',
        olderThanMs: DAY,
      })
      expect(report.orphans).toContain(left)
      expect(report.orphans).not.toContain(finalPath(blob.pathname))
    } finally {
      delete process.env.SESSION_AUDIO_SWEEP_SECRET
    }
    expect(s.blob.list()).not.toContain(left)
    expect(s.blob.list()).toContain(finalPath(blob.pathname))
  })
})
