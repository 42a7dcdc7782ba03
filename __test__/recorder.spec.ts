// The recorder of `session-audio/client` (client/recorder/) in Node, driven chunk by chunk: a
// stand-in MediaRecorder hands over a real Chromium WebM recording (benchmark/lib/long-webm.mjs,
// the fixture's clusters repeated) when the test says so, the journal is the in-memory one, and
// the parts go through the real route (the addon, on OIDC: presigned URLs) to the Blob emulator,
// whose log says which part arrived when. What it pins down (docs/stop-to-transcribing.md, option
// C): part 1 goes up while recording with the provisional header region, as soon as it is full;
// after Stop only what did not go up is sent (no part twice); a recording that fits one part is one
// PUT with the final header; resuming after a crash keeps part 1 unless the cut falls inside it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startRouteServer } from '../stack/route-server.mjs'
import { createAudioHandlers } from '../index.js'
import { createSessionRecorder } from '../client/recorder/recorder.mjs'
import { createMemoryJournal } from '../client/recorder/memory-journal.mjs'
import { active, resumeSessionUploads } from '../client/recorder/resume.mjs'
import { headerFor, validParts } from '../client/recorder/deliver.mjs'
import { createWebmFinaliser } from '../client/finalise/webm.mjs'
import { longWebm } from '../benchmark/lib/long-webm.mjs'
import { StandInMediaRecorder, startStack, until, type Stack } from './helpers'

const PART = 128 * 1024
const FAST_RETRY = { attempts: 3, baseMs: 20, maxMs: 200 }

let s: Stack
let route: Awaited<ReturnType<typeof startRouteServer>>
let alice = ''
const handlers: Record<string, any> = {}
/** The stored blob's bytes as the browser's completion names it, read before the route sees it. */
const storedAtCompletion = new Map<string, Buffer>()

beforeAll(async () => {
  s = await startStack()
  alice = await s.clerk.sessionToken({ sub: 'user_alice' })
  const routeHandlers = {
    GET: (req: Request, ctx: unknown) => handlers.GET(req, ctx),
    POST: async (req: Request, ctx: unknown) => {
      if (!/json/.test(req.headers.get('content-type') ?? '')) return handlers.POST(req, ctx)
      const text = await req.text()
      const event = JSON.parse(text)
      if (event?.type === 'session-audio.complete-upload') {
        const url = new URL(String(event.payload.url))
        storedAtCompletion.set(url.href, Buffer.from(s.blob.read(decodeURIComponent(url.pathname.slice(1)))))
      }
      return handlers.POST(new Request(req.url, { method: 'POST', headers: req.headers, body: text }), ctx)
    },
  }
  route = await startRouteServer({
    handlers: routeHandlers as never,
    requestHeaders: () => ({ 'x-vercel-oidc-token': s.blob.oidcToken() }),
  })
  Object.assign(handlers, createAudioHandlers(s.oidcOptions({ blobCallbackUrl: route.url, logLevel: 'warn' })))
  // Blob's completion webhooks held: the browser's completion decides, so the stored upload is
  // read (storedAtCompletion) before the route attaches it or replaces it with its rewrite.
  s.blob.state.holdWebhooks = true
  ;(globalThis as any).MediaRecorder = StandInMediaRecorder
})
afterAll(async () => {
  delete (globalThis as any).MediaRecorder
  if (s) {
    s.blob.state.holdWebhooks = false
    await s.blob.releaseWebhooks()
  }
  await route?.close()
  await s?.close()
})

/** The recording cut into MediaRecorder's 1 s chunks. */
function chunksOf(rec: { bytes: Uint8Array; chunkEnds: number[] }) {
  return rec.chunkEnds.map((end, i) => rec.bytes.subarray(i ? rec.chunkEnds[i - 1] : 0, end))
}

/** The finaliser fed `input`: the provisional header region it wrote, and `D` (where the first Cluster starts). */
function fed(input: Uint8Array) {
  const f = createWebmFinaliser()
  const out = f.push(input)
  return { f, provisional: Buffer.from(out.subarray(0, f.headerLength!)), D: f.inputDataStart as number }
}

/** What the finaliser makes of `input`: the provisional and final header regions, `D`, the Cues. */
function finalised(input: Uint8Array) {
  const { f, provisional, D } = fed(input)
  const { header, tail } = f.finish()
  return { provisional, header: Buffer.from(header), tail: Buffer.from(tail), D }
}

/** The upload stream of `input` with the header region `header`. */
const streamOf = (input: Uint8Array, header: Buffer, f: ReturnType<typeof finalised>) =>
  Buffer.concat([header, Buffer.from(input.subarray(f.D)), f.tail])

/** The browser's multipart uploads of `id` (not the one the route makes when it rewrites the file). */
const uploadsOf = (id: string) =>
  s.blob.multipart.filter((m: { pathname: string }) => m.pathname.includes(id) && !m.pathname.includes('.final.'))
const uploadOf = (id: string) => uploadsOf(id)[0]
const partNumbers = (id: string): number[] => (uploadOf(id)?.parts ?? []).map((p: any) => p.partNumber)

/** A recorder of `id` on the stand-in MediaRecorder and `journal`; `emit` hands over chunks and waits until journaled. */
async function startRecording(id: string, journal: ReturnType<typeof createMemoryJournal>, extra = {}) {
  const progress: { uploadedBytes: number; journaledBytes: number }[] = []
  const errors: unknown[] = []
  const r = createSessionRecorder(id, {
    stream: { getTracks: () => [] },
    mimeType: 'audio/webm;codecs=opus',
    journal,
    routeUrl: `${route.url}/api/listening-sessions/${id}/audio`,
    headers: { authorization: `Bearer ${alice}` },
    blobApiUrl: s.blob.apiUrl,
    retry: FAST_RETRY,
    onProgress: (p: (typeof progress)[number]) => progress.push(p),
    onError: (e: unknown) => errors.push(e),
    ...extra,
  } as never) as any
  await r.start()
  const media = StandInMediaRecorder.last!
  let emitted = 0
  const emit = async (chunks: Uint8Array[]) => {
    for (const c of chunks) {
      media.emit(c)
      emitted += c.length
    }
    expect(await until(() => progress.at(-1)?.journaledBytes === emitted, 5000)).toBe(true)
  }
  return { r, emit, progress, errors }
}

/**
 * Wait until the parts of `id` that `written` upload-stream bytes fill have all arrived and the
 * recorder has their answers (`progress`: its onProgress calls).
 */
async function partsFilled(id: string, written: number, progress: { uploadedBytes: number }[]) {
  const full = Math.floor(written / PART)
  expect(await until(() => (uploadOf(id)?.parts.length ?? 0) >= full, 10_000)).toBe(true)
  expect(await until(() => progress.at(-1)?.uploadedBytes === full * PART, 10_000)).toBe(true)
  return full
}

describe('part 1 while recording, only the unsent tail after Stop', () => {
  it('part 1 goes up before Stop with the provisional header region; after Stop only the parts not sent, whose bytes are exactly the unsent tail', async () => {
    const rec = longWebm(1)
    const chunks = chunksOf(rec)
    const f = finalised(rec.bytes)
    const id = await s.session('user_alice', null, { status: 'recording' })
    const { r, emit, progress, errors } = await startRecording(id, createMemoryJournal(), { partSizeBytes: PART })

    // A little over one part: part 1 goes up now, not at Stop.
    const upTo = chunks.findIndex((_, i) => rec.chunkEnds[i] - f.D + f.provisional.length > PART + 4096)
    await emit(chunks.slice(0, upTo + 1))
    await partsFilled(id, rec.chunkEnds[upTo] - f.D + f.provisional.length, progress)
    expect(partNumbers(id)).toEqual([1])

    await emit(chunks.slice(upTo + 1))
    const written = rec.bytes.length - f.D + f.provisional.length
    const full = await partsFilled(id, written, progress)
    const beforeStop = partNumbers(id)
    expect(beforeStop).toEqual(Array.from({ length: full }, (_, i) => i + 1))
    expect(full).toBeGreaterThanOrEqual(5)
    const stopAt = Date.now()

    const result = await r.stop()
    expect(errors).toEqual([])
    expect(result).toMatchObject({ sessionId: id, status: 'transcribing' })
    expect(Math.abs(result.durationMs - rec.durationMs)).toBeLessThanOrEqual(rec.durationMs * 0.01)
    expect(r.stats.partsBeforeStop).toBe(full)

    const total = written + f.tail.length
    const upload = uploadOf(id)
    const count = Math.ceil(total / PART)
    // Every part once, in ascending order; after Stop only those that had not gone up.
    expect(upload.partCalls).toBe(count)
    expect(partNumbers(id)).toEqual(Array.from({ length: count }, (_, i) => i + 1))
    const afterStop = upload.parts.filter((p: any) => p.startedAt >= stopAt)
    expect(afterStop.map((p: any) => p.partNumber)).toEqual(
      Array.from({ length: count - full }, (_, i) => full + i + 1),
    )
    expect(afterStop.reduce((a: number, p: any) => a + p.size, 0)).toBe(total - full * PART)
    expect(progress.at(-1)!.uploadedBytes).toBe(total)

    // What was stored: the provisional header region (the route writes the final one), the
    // recording from its first Cluster, the Cues.
    const stored = storedAtCompletion.get([...storedAtCompletion.keys()].find((u) => u.includes(id))!)!
    expect(f.provisional.equals(f.header)).toBe(false)
    expect(stored.equals(streamOf(rec.bytes, f.provisional, f))).toBe(true)
  })

  it('a recording that fits one part is one PUT with the final header region, written by the client', async () => {
    const rec = longWebm(0.25)
    const f = finalised(rec.bytes)
    const id = await s.session('user_alice', null, { status: 'recording' })
    const { r, emit } = await startRecording(id, createMemoryJournal())
    await emit(chunksOf(rec))
    const result = await r.stop()
    expect(result).toMatchObject({ sessionId: id, status: 'transcribing' })
    expect(uploadOf(id)).toBeUndefined()
    expect(s.blob.puts.filter((p: { pathname: string }) => p.pathname.includes(id))).toHaveLength(1)
    const stored = storedAtCompletion.get([...storedAtCompletion.keys()].find((u) => u.includes(id))!)!
    expect(stored.equals(streamOf(rec.bytes, f.header, f))).toBe(true)
  })

  it('a crash cut inside a block: resuming from the journal continues the same upload, keeps part 1 and every part before the cut, and sends only the rest', async () => {
    const rec = longWebm(1)
    const chunks = chunksOf(rec)
    const journal = createMemoryJournal()
    const id = await s.session('user_alice', null, { status: 'recording' })
    const { emit, progress } = await startRecording(id, journal, { partSizeBytes: PART })
    const k = Math.floor(chunks.length * 0.7)
    // The last chunk a crash left is cut short, inside a block.
    const cutChunk = chunks[k].subarray(0, chunks[k].length - 7)
    await emit([...chunks.slice(0, k), cutChunk])
    const journaled = rec.chunkEnds[k - 1] + cutChunk.length
    const f = fed(rec.bytes.subarray(0, journaled))
    const full = await partsFilled(id, journaled - f.D + f.provisional.length, progress)
    const beforeCrash = partNumbers(id)
    expect(beforeCrash).toEqual(Array.from({ length: full }, (_, i) => i + 1))
    expect(beforeCrash).toContain(1)
    const { uploadId } = uploadOf(id)
    const crashAt = Date.now()
    // The page is gone (its recorder with it); a new page resumes what the journal holds.
    active.delete(id)

    const outcomes = await resumeSessionUploads({ journal, headers: { authorization: `Bearer ${alice}` } } as never)
    expect(outcomes).toEqual([{ sessionId: id, result: expect.objectContaining({ status: 'transcribing' }) }])
    expect(uploadsOf(id)).toHaveLength(1)
    expect(uploadOf(id).uploadId).toBe(uploadId)
    const resent = uploadOf(id).parts.filter((p: any) => p.startedAt >= crashAt)
    for (const p of resent) expect(beforeCrash).not.toContain(p.partNumber)

    // Finalised at the cut (the journal's last whole element), part 1 as it went up.
    const cleanEnd = f.f.completeBytes!
    expect(cleanEnd).toBeLessThan(journaled)
    const atCut = finalised(rec.bytes.subarray(0, cleanEnd))
    expect(atCut.provisional.equals(f.provisional)).toBe(true)
    const stored = storedAtCompletion.get([...storedAtCompletion.keys()].find((u) => u.includes(id))!)!
    expect(stored.equals(streamOf(rec.bytes.subarray(0, cleanEnd), atCut.provisional, atCut))).toBe(true)
    expect(await journal.get(id)).toBeNull()
  })
})

describe('pure decisions: which parts survive a cut, which header region goes up', () => {
  const P = 100
  const state = (parts: number[]) => ({
    uploadId: 'u',
    parts: Object.fromEntries(parts.map((n) => [n, `e${n}`])),
    sizes: Object.fromEntries(parts.map((n) => [n, P])),
    completed: { url: 'x' },
  })
  // H = 10, D = 4: the body ends at 10 + inputBytes - 4.
  const stream = (inputBytes: number, H = 10) => ({
    header: new Uint8Array(H).fill(2),
    provisional: new Uint8Array(H).fill(1),
    inputBytes,
    dataStart: 4,
  })

  it.each([
    ['no cut: the saved state as it is', state([1, 2, 3]), 394, false, [1, 2, 3], { url: 'x' }],
    ['no saved state', null, 394, true, null, undefined],
    ['a cut past every stored part keeps them all, part 1 included', state([1, 2, 3]), 394, true, [1, 2, 3], null],
    ['a cut inside part 3 drops part 3 only', state([1, 2, 3]), 284, true, [1, 2], null],
    ['a cut inside part 2 keeps part 1', state([1, 2]), 190, true, [1], null],
    ['a cut inside part 1 drops it', state([1, 2]), 90, true, [], null],
  ])('validParts: %s', (_, saved, inputBytes, cut, kept, completed) => {
    const v = validParts(saved, stream(inputBytes), P, cut)
    if (kept === null) return expect(v).toBeNull()
    expect(Object.keys(v.parts).map(Number)).toEqual(kept)
    expect(Object.keys(v.sizes).map(Number)).toEqual(kept)
    expect(v.completed).toEqual(completed)
  })

  it.each([
    ['nothing stored: the final one', null, 10, 2],
    ['an upload made, no part stored: the final one', state([]), 10, 2],
    ['part 1 stored (it went up while recording): the provisional one', state([1]), 10, 1],
    ['only later parts stored (part 1 failed while recording): the final one', state([2, 3]), 10, 2],
    ['a header region longer than a part, part 2 stored: the provisional one', state([2]), 150, 1],
  ])('headerFor: %s', (_, saved, H, fill) => {
    expect(headerFor(stream(500, H), saved, P)[0]).toBe(fill)
  })
})
