// client/blob/ (with the grants of client/route.mjs), the uploader the recorder sends parts with while it records, against the real
// route (grants) and the Blob emulator (storage), on both kinds of deployment: one with a
// read-write token (client tokens) and one on OIDC alone (presigned URLs; the route server adds
// `x-vercel-oidc-token` as Vercel does). Parts here are 256 KiB: the emulator has no minimum part
// size; Vercel Blob's is 5 MiB and the uploader's default 8 MiB. The emulator enforces what R2
// enforces on completion (parts 1..N, equal non-final parts) and logs every part's size and
// arrival (`blob.multipart`).
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startRouteServer } from '../stack/route-server.mjs'
import { sineWav } from '../stack/wav.mjs'
import { createAudioHandlers, type AudioOptions } from '../index.js'
import { backoffMs, putWhole } from '../client/blob/client.mjs'
import { createMultipartUpload } from '../client/blob/multipart.mjs'
import { blobApiUrl } from '../client/blob/transport.mjs'
import { grantNeedsRenewal, requestGrant } from '../client/route.mjs'
import { SessionAudioUploadError } from '../client/errors.mjs'
import { startStack, until, type Stack } from './helpers'

const PART = 256 * 1024
const FAST_RETRY = { attempts: 5, baseMs: 20, maxMs: 200 }

let s: Stack
let alice: string

/** One deployment: a route server with its own handlers, and the grant events it answered. */
type Deployment = {
  name: string
  kind: 'client-token' | 'presigned'
  options: (extra?: AudioOptions) => AudioOptions
  route: Awaited<ReturnType<typeof startRouteServer>>
  handlers: Record<string, any>
  events: { type: string; at: number; status: number }[]
  use: (extra?: AudioOptions) => void
}
const deployments: Deployment[] = []

async function deployment(name: string, kind: Deployment['kind']): Promise<Deployment> {
  const handlers: Record<string, any> = {}
  const events: Deployment['events'] = []
  // Every JSON event the route answers, with its status: the grants asked for, and when.
  const counting = {
    POST: async (req: Request, ctx: unknown) => {
      const type = req.headers.get('content-type')?.startsWith('application/json')
        ? (await req.clone().json()).type
        : 'upload'
      const res = await handlers.POST(req, ctx)
      events.push({ type, at: Date.now(), status: res.status })
      return res
    },
    GET: (req: Request, ctx: unknown) => handlers.GET(req, ctx),
  }
  const route = await startRouteServer({
    handlers: counting as never,
    requestHeaders: () => (kind === 'presigned' ? { 'x-vercel-oidc-token': s.blob.oidcToken() } : {}),
  })
  const options = (extra: AudioOptions = {}) =>
    kind === 'presigned'
      ? s.oidcOptions({ blobCallbackUrl: route.url, ...extra })
      : s.options({ blobCallbackUrl: route.url, ...extra })
  const use = (extra: AudioOptions = {}) => Object.assign(handlers, createAudioHandlers(options(extra)))
  use()
  return { name, kind, options, route, handlers, events, use }
}

beforeAll(async () => {
  s = await startStack()
  alice = await s.clerk.sessionToken({ sub: 'user_alice' })
  for (const k of ['VERCEL_OIDC_TOKEN', 'BLOB_STORE_ID', 'BLOB_READ_WRITE_TOKEN', 'VERCEL_BLOB_API_URL'])
    delete process.env[k]
  deployments.push(await deployment('read-write token (client tokens)', 'client-token'))
  deployments.push(await deployment('OIDC (presigned URLs)', 'presigned'))
})
afterAll(async () => {
  for (const d of deployments) await d.route.close()
  await s?.close()
})

const recording = (userId = 'user_alice') => s.session(userId, null, { status: 'recording' })
const audioRoute = (d: Deployment, id: string) => `${d.route.url}/api/listening-sessions/${id}/audio`
const pathnameOf = (id: string) => `listening-sessions/${id}/recording.wav`
const declare = (durationMs: number) => JSON.stringify({ durationMs, contentType: 'audio/wav' })

/** The uploader as the recorder builds it, for `id` on `d`. */
function uploader(d: Deployment, id: string, extra: Record<string, unknown> = {}) {
  return createMultipartUpload({
    routeUrl: audioRoute(d, id),
    headers: { authorization: `Bearer ${alice}` },
    pathname: pathnameOf(id),
    contentType: 'audio/wav',
    clientPayload: declare(30_000),
    partSize: PART,
    apiUrl: s.blob.apiUrl,
    retry: FAST_RETRY,
    ...extra,
  })
}

const partOf = (bytes: Buffer, n: number) => new Blob([bytes.subarray((n - 1) * PART, n * PART)])
const partCount = (bytes: Buffer) => Math.ceil(bytes.length / PART)

/** The emulator's log entry of the multipart upload `uploadId`. */
const logOf = (uploadId: string) => s.blob.multipart.find((m: any) => m.uploadId === uploadId)!

/** The route's completion event, as uploadSessionAudio sends it. */
function completeEvent(d: Deployment, id: string, url: string, durationMs = 30_000) {
  return fetch(audioRoute(d, id), {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${alice}` },
    body: JSON.stringify({ type: 'session-audio.complete-upload', payload: { url, durationMs } }),
  })
}

/** Run `fn` with Blob's completion webhooks held (the browser's event decides), then let them go. */
async function withHeldWebhooks<T>(fn: () => Promise<T>): Promise<T> {
  s.blob.state.holdWebhooks = true
  try {
    return await fn()
  } finally {
    s.blob.state.holdWebhooks = false
    await s.blob.releaseWebhooks()
  }
}

/** Upload every part of `bytes` in `order` (default 1..N), one at a time, and complete. */
async function uploadAll(mpu: ReturnType<typeof uploader>, bytes: Buffer, order?: number[]) {
  const total = partCount(bytes)
  for (const n of order ?? Array.from({ length: total }, (_, i) => i + 1)) await mpu.uploadPart(n, partOf(bytes, n))
  return mpu.complete(total)
}

/** The route's answers to the deployment's own grant event (an OIDC route is asked for a client token first). */
const grantEvents = (d: Deployment) =>
  d.events.filter(
    (e) => e.type === (d.kind === 'presigned' ? 'blob.generate-presigned-url' : 'blob.generate-client-token'),
  )

describe('pure decisions', () => {
  it('session-audio/client rejects with the same SessionAudioUploadError class', async () => {
    expect((await import('../client.mjs')).SessionAudioUploadError).toBe(SessionAudioUploadError)
  })

  it('a grant is renewed when less than max(1 s, min(5 min, 25 % of its lifetime)) remains', () => {
    const cases: [lifetimeMs: number, elapsedMs: number, renew: boolean][] = [
      [3_600_000, 0, false],
      [3_600_000, 3_600_000 - 300_001, false], // 5 min cap: 5 min + 1 ms left
      [3_600_000, 3_600_000 - 299_999, true],
      [2_000, 999, false], // 1 s floor: 1.001 s left
      [2_000, 1_001, true],
      [8_000, 5_999, false], // 25 %: 2 s
      [8_000, 6_001, true],
      [500, 0, true], // shorter than the floor: always renewed before use
    ]
    for (const [lifetime, elapsed, renew] of cases) {
      const grant = { receivedAt: 1_000_000, validUntil: 1_000_000 + lifetime }
      expect([lifetime, elapsed, grantNeedsRenewal(grant, 1_000_000 + elapsed)]).toEqual([lifetime, elapsed, renew])
    }
  })

  it('backoff doubles from baseMs up to maxMs, with jitter between half and all of it', () => {
    const policy = { baseMs: 500, maxMs: 30_000 }
    const cases: [n: number, random: number, ms: number][] = [
      [0, 0, 250],
      [0, 1, 500],
      [1, 0.5, 750],
      [3, 1, 4_000],
      [6, 1, 30_000], // 32 s capped
      [20, 0, 15_000],
    ]
    for (const [n, r, ms] of cases) expect([n, r, backoffMs(n, policy, () => r)]).toEqual([n, r, ms])
  })

  it('the Blob API URL: the option, else VERCEL_BLOB_API_URL / NEXT_PUBLIC_VERCEL_BLOB_API_URL, else Vercel', () => {
    expect(blobApiUrl('http://localhost:9/api/blob/')).toBe('http://localhost:9/api/blob')
    expect(blobApiUrl()).toBe('https://vercel.com/api/blob')
    process.env.NEXT_PUBLIC_VERCEL_BLOB_API_URL = 'http://next.local/api/blob'
    expect(blobApiUrl()).toBe('http://next.local/api/blob')
    process.env.VERCEL_BLOB_API_URL = 'http://env.local/api/blob'
    expect(blobApiUrl()).toBe('http://env.local/api/blob')
    delete process.env.VERCEL_BLOB_API_URL
    delete process.env.NEXT_PUBLIC_VERCEL_BLOB_API_URL
  })
})

describe('the Blob emulator enforces R2’s multipart rules', () => {
  /** Raw multipart steps with the read-write token, as the SDK sends them. */
  async function raw(parts: [n: number, size: number][], completeWith?: number[]) {
    const pathname = `listening-sessions/raw/${crypto.randomUUID()}.wav`
    const url = `${s.blob.apiUrl}/mpu?${new URLSearchParams({ pathname })}`
    const base = {
      authorization: `Bearer ${s.blob.token}`,
      'x-api-version': '12',
      'x-vercel-blob-access': 'private',
    }
    const created = await (await fetch(url, { method: 'POST', headers: { ...base, 'x-mpu-action': 'create' } })).json()
    const ids = { 'x-mpu-upload-id': created.uploadId, 'x-mpu-key': encodeURIComponent(created.key) }
    const etags = new Map<number, string>()
    for (const [n, size] of parts) {
      const res = await fetch(url, {
        method: 'POST',
        headers: { ...base, ...ids, 'x-mpu-action': 'upload', 'x-mpu-part-number': String(n) },
        body: new Uint8Array(size).fill(n),
      })
      etags.set(n, (await res.json()).etag)
    }
    const list = (completeWith ?? [...etags.keys()]).map((n) => ({ partNumber: n, etag: etags.get(n) }))
    const res = await fetch(url, {
      method: 'POST',
      headers: { ...base, ...ids, 'x-mpu-action': 'complete', 'content-type': 'application/json' },
      body: JSON.stringify(list),
    })
    return { status: res.status, body: await res.json(), uploadId: created.uploadId as string }
  }

  it('equal non-final parts complete (the last may be shorter), in any order', async () => {
    const done = await raw([
      [3, 10],
      [1, 100],
      [2, 100],
    ])
    expect(done.status).toBe(200)
    expect(s.blob.read(done.body.pathname).length).toBe(210)
    expect(logOf(done.uploadId).parts.map((p: any) => [p.partNumber, p.size])).toEqual([
      [3, 10],
      [1, 100],
      [2, 100],
    ])
  })

  it('an unequal non-final part is 400 bad_request InvalidPart, and nothing is stored', async () => {
    const before = s.blob.list().length
    const refused = await raw([
      [1, 100],
      [2, 200],
      [3, 50],
    ])
    expect(refused.status).toBe(400)
    expect(refused.body.error).toEqual({
      code: 'bad_request',
      message: 'InvalidPart: All non-trailing parts must have the same length',
    })
    expect(logOf(refused.uploadId).refusals).toHaveLength(1)
    expect(s.blob.list().length).toBe(before)
  })

  it('part numbers must run 1..N: a gap or a list not starting at 1 is refused', async () => {
    for (const [parts, list] of [
      [
        [
          [1, 100],
          [3, 100],
        ],
        [1, 3],
      ],
      [
        [
          [2, 100],
          [3, 100],
        ],
        [2, 3],
      ],
    ] as [[number, number][], number[]][]) {
      const refused = await raw(parts, list)
      expect(refused.status).toBe(400)
      expect(refused.body.error.message).toMatch(/^InvalidPart: part numbers must run 1\.\.2/)
    }
  })
})

describe.each([
  ['a read-write token (client tokens)', 0],
  ['OIDC alone (presigned URLs)', 1],
])('client/blob/ on a deployment with %s', (_name, index) => {
  const d = () => deployments[index]

  it('≥ 3 parts of 256 KiB complete, stored bytes equal the input, equal non-final parts, the grant kind is the deployment’s, and the completion event attaches', async () => {
    const id = await recording()
    const wav = sineWav(30) // 960 044 bytes: 3 × 256 KiB and a shorter fourth part
    expect(partCount(wav)).toBe(4)
    const states: any[] = []
    const progress: number[] = []
    const mpu = uploader(d(), id, {
      onStateChange: (st: any) => states.push(st),
      onProgress: ({ uploadedBytes }: { uploadedBytes: number }) => progress.push(uploadedBytes),
    })
    const stored = await withHeldWebhooks(async () => {
      const stored = await uploadAll(mpu, wav)
      const res = await completeEvent(d(), id, stored.url)
      expect(res.status).toBe(201)
      expect(await res.json()).toMatchObject({ sessionId: id, status: 'transcribing', sizeBytes: wav.length })
      return stored
    })
    expect(s.blob.read(stored.pathname).equals(wav)).toBe(true)
    const log = logOf(states[0].uploadId)
    expect(log.kind).toBe(d().kind)
    expect(log.parts.map((p: any) => p.size)).toEqual([PART, PART, PART, wav.length - 3 * PART])
    expect(log.parts.every((p: any) => p.kind === d().kind)).toBe(true)
    // The state after each change: created, then each part, then completed.
    expect(states.map((st) => Object.keys(st.parts).length)).toEqual([0, 1, 2, 3, 4, 4])
    expect(states.at(-1)).toMatchObject({ completed: { url: stored.url }, partSize: PART, pathname: pathnameOf(id) })
    expect(JSON.parse(JSON.stringify(states.at(-1)))).toEqual(states.at(-1))
    expect(progress.at(-1)).toBe(wav.length)
    expect(await s.convex.getSession(id)).toMatchObject({ status: 'transcribing', audioUrl: stored.url })
  })

  it('resume: a new uploader given the saved state sends only the missing parts and completes', async () => {
    const id = await recording()
    const wav = sineWav(30)
    let saved: any = null
    const first = uploader(d(), id, { onStateChange: (st: any) => (saved = st) })
    await first.uploadPart(1, partOf(wav, 1))
    await first.uploadPart(2, partOf(wav, 2))
    // "Reload": only the persisted state survives.
    const again = uploader(d(), id, { state: JSON.parse(JSON.stringify(saved)) })
    const stored = await withHeldWebhooks(() => uploadAll(again, wav))
    const log = logOf(saved.uploadId)
    expect(log.partCalls).toBe(4) // 1, 2, then only 3 and 4
    expect(log.parts.map((p: any) => p.partNumber)).toEqual([1, 2, 3, 4])
    expect(s.blob.read(stored.pathname).equals(wav)).toBe(true)
    // A state saved with another part size cannot be continued with different parts.
    expect(() => uploader(d(), id, { state: saved, partSize: PART * 2 })).toThrow(/resume with the same partSize/)
  })

  it('parts out of order, part 1 last, complete correctly', async () => {
    const id = await recording()
    const wav = sineWav(30)
    let uploadId = ''
    const mpu = uploader(d(), id, { onStateChange: (st: any) => (uploadId = st.uploadId) })
    const stored = await withHeldWebhooks(() => uploadAll(mpu, wav, [2, 4, 3, 1]))
    expect(logOf(uploadId).parts.map((p: any) => p.partNumber)).toEqual([2, 4, 3, 1])
    expect(s.blob.read(stored.pathname).equals(wav)).toBe(true)
  })

  it('an unequal non-final part is refused before it is sent (invalid_part)', async () => {
    const id = await recording()
    let uploadId = ''
    const mpu = uploader(d(), id, { onStateChange: (st: any) => (uploadId = st.uploadId) })
    await mpu.uploadPart(2, new Blob([new Uint8Array(PART)]))
    const calls = () => logOf(uploadId).partCalls
    const refused = async (p: Promise<unknown>) => {
      const err: any = await p.catch((e) => e)
      expect(err).toBeInstanceOf(SessionAudioUploadError)
      expect([err.status, err.code]).toEqual([400, 'invalid_part'])
      return err.message as string
    }
    expect(await refused(mpu.uploadPart(1, new Blob([new Uint8Array(PART + 1)])))).toMatch(/every part is 1\.\.262144/)
    expect(await refused(mpu.uploadPart(1, new Blob([new Uint8Array(PART - 1)])))).toMatch(/part 2 follows it/)
    await mpu.uploadPart(3, new Blob([new Uint8Array(1000)])) // a shorter part is the last one
    expect(await refused(mpu.uploadPart(4, new Blob([new Uint8Array(PART)])))).toMatch(/shorter last part/)
    expect(await refused(mpu.complete(4))).toMatch(/Parts 1, 4 of 4 were not uploaded/)
    expect(calls()).toBe(2) // the refused parts never reached the store
  })

  it('a 503 and a dropped connection on parts are retried and the upload completes', async () => {
    const id = await recording()
    const wav = sineWav(30)
    let uploadId = ''
    const mpu = uploader(d(), id, { onStateChange: (st: any) => (uploadId = st.uploadId) })
    await mpu.uploadPart(1, partOf(wav, 1))
    s.blob.state.fail = { status: 503, code: 'service_unavailable', kind: 'mpu-part' }
    await mpu.uploadPart(2, partOf(wav, 2))
    expect(s.blob.state.fail).toBeNull()
    s.blob.state.resetAfterBytes = 10_000
    await mpu.uploadPart(3, partOf(wav, 3))
    expect(s.blob.state.resetAfterBytes).toBeNull()
    s.blob.state.fail = { status: 500, code: 'internal_server_error', kind: 'mpu-complete' }
    const stored = await withHeldWebhooks(async () => {
      await mpu.uploadPart(4, partOf(wav, 4))
      return mpu.complete(4)
    })
    const log = logOf(uploadId)
    expect(log.partCalls).toBe(6) // 4 parts, 2 of them twice
    expect(log.parts.map((p: any) => p.partNumber)).toEqual([1, 2, 3, 4])
    expect(s.blob.read(stored.pathname).equals(wav)).toBe(true)
  })

  it('Blob’s refusal is final: storage_failed with Blob’s code, after one attempt', async () => {
    const id = await recording()
    let uploadId = ''
    const mpu = uploader(d(), id, { onStateChange: (st: any) => (uploadId = st.uploadId) })
    await mpu.ensureCreated()
    s.blob.state.fail = { status: 400, code: 'bad_request', kind: 'mpu-part', sticky: true }
    try {
      const err: any = await mpu.uploadPart(1, new Blob([new Uint8Array(PART)])).catch((e) => e)
      expect(err).toBeInstanceOf(SessionAudioUploadError)
      expect([err.status, err.code, err.blobCode, err.blobStatus]).toEqual([502, 'storage_failed', 'bad_request', 400])
      expect(logOf(uploadId).partCalls).toBe(1)
    } finally {
      s.blob.state.fail = null
    }
    // An upload the store no longer knows is told apart: start a new one.
    const gone = uploader(d(), id, { state: { ...mpu.state, uploadId: 'no-such-upload' } })
    const err: any = await gone.uploadPart(1, new Blob([new Uint8Array(PART)])).catch((e) => e)
    expect([err.status, err.code]).toEqual([404, 'multipart_upload_not_found'])
  })

  it('a route refusal (session not recording: 409) rejects at once with the route’s code, no retries', async () => {
    const done = await s.session('user_alice', null, { status: 'transcribing' })
    const before = grantEvents(d()).length
    const started = Date.now()
    const mpu = uploader(d(), done, { retry: { attempts: 8, baseMs: 1000, maxMs: 30_000 } })
    const err: any = await mpu.uploadPart(1, new Blob([new Uint8Array(PART)])).catch((e) => e)
    expect(err).toBeInstanceOf(SessionAudioUploadError)
    expect([err.status, err.code]).toEqual([409, 'invalid_session_state'])
    expect(
      grantEvents(d())
        .slice(before)
        .map((e) => e.status),
    ).toEqual([409])
    expect(Date.now() - started).toBeLessThan(1000) // no backoff either
  })

  it('grant expiry: with 2 s grants and slow parts, a new grant is asked for before the old one expires, and the upload completes', async () => {
    d().use({ clientTokenTtlMs: 2000 })
    s.blob.state.partLatencyMs = 500
    try {
      const id = await recording()
      const wav = sineWav(30)
      const grants: { kind: string; receivedAt: number; validUntil: number }[] = []
      const before = grantEvents(d()).length
      const signed = s.blob.signedTokens.length
      const mpu = uploader(d(), id, { onGrant: (g: any) => grants.push(g) })
      const stored = await withHeldWebhooks(() => uploadAll(mpu, wav))
      expect(s.blob.read(stored.pathname).equals(wav)).toBe(true)
      // create, 4 parts of ≥ 0.5 s and complete on 2 s grants renewed with 1 s left: ≥ 2 grants.
      expect(grants.length).toBeGreaterThanOrEqual(2)
      expect(grantEvents(d()).length - before).toBe(grants.length)
      if (d().kind === 'presigned') expect(s.blob.signedTokens.length - signed).toBe(grants.length)
      for (const g of grants) expect(g.kind).toBe(d().kind)
      for (const [i, g] of grants.entries()) {
        expect(g.validUntil - g.receivedAt).toBeLessThanOrEqual(2000)
        if (i > 0) expect(g.receivedAt).toBeLessThan(grants[i - 1].validUntil)
      }
      // No request found its grant expired: every grant event succeeded and nothing was refused.
      expect(
        grantEvents(d())
          .slice(before)
          .every((e) => e.status === 200),
      ).toBe(true)
    } finally {
      s.blob.state.partLatencyMs = 0
      d().use()
    }
  })

  it('a stalled part (no answer) is aborted after stallMs and sent again', async () => {
    const id = await recording()
    const wav = sineWav(30)
    let uploadId = ''
    const mpu = uploader(d(), id, { stallMs: 400, onStateChange: (st: any) => (uploadId = st.uploadId) })
    await mpu.uploadPart(1, partOf(wav, 1))
    s.blob.state.misbehave = { kind: 'mpu-part', mode: 'hang' }
    const started = Date.now()
    await mpu.uploadPart(2, partOf(wav, 2))
    expect(Date.now() - started).toBeGreaterThanOrEqual(400)
    expect(s.blob.state.misbehave).toBeNull()
    expect(logOf(uploadId).partCalls).toBe(3)
    await mpu.uploadPart(3, partOf(wav, 3))
    const stored = await withHeldWebhooks(async () => {
      await mpu.uploadPart(4, partOf(wav, 4))
      return mpu.complete(4)
    })
    expect(s.blob.read(stored.pathname).equals(wav)).toBe(true)
  })

  it('offline: nothing is sent until online, and a failure while offline spends no attempt', async () => {
    const id = await recording()
    const wav = sineWav(30)
    let online = false
    let wake: () => void = () => {}
    const script: boolean[] = [] // answers isOnline() gives before falling back to `online`
    const fake = {
      isOnline: () => (script.length ? script.shift()! : online),
      waitOnline: () => new Promise<void>((resolve) => (wake = resolve)),
    }
    const goOnline = () => {
      online = true
      wake()
    }
    let uploadId = ''
    const mpu = uploader(d(), id, {
      online: fake,
      retry: { attempts: 1, baseMs: 10, maxMs: 10 }, // one attempt: any counted failure would be fatal
      onStateChange: (st: any) => (uploadId = st.uploadId),
    })
    const eventsBefore = d().events.length
    const pending = mpu.uploadPart(1, partOf(wav, 1))
    await new Promise((r) => setTimeout(r, 300))
    expect(uploadId).toBe('')
    expect(d().events.length).toBe(eventsBefore) // not even the route was asked
    goOnline()
    await pending
    // The connection drops as the browser goes offline (online for the send, offline when it
    // fails): the attempt is not counted, and the next waits for `online`.
    s.blob.state.resetAfterBytes = 10_000
    const calls = logOf(uploadId).partCalls
    online = false
    script.push(true)
    const drop = mpu.uploadPart(2, partOf(wav, 2))
    expect(await until(() => logOf(uploadId).partCalls === calls + 1, 3000)).toBe(true)
    await new Promise((r) => setTimeout(r, 300))
    expect(logOf(uploadId).partCalls).toBe(calls + 1) // waiting, not retrying
    goOnline()
    await drop
    expect(logOf(uploadId).partCalls).toBe(calls + 2)
    const stored = await withHeldWebhooks(async () => {
      await mpu.uploadPart(3, partOf(wav, 3))
      await mpu.uploadPart(4, partOf(wav, 4))
      return mpu.complete(4)
    })
    expect(s.blob.read(stored.pathname).equals(wav)).toBe(true)
  })

  it('putWhole: one PUT with the deployment’s grant, retried on a 503', async () => {
    const id = await recording()
    const wav = sineWav(5)
    const puts = s.blob.puts.length
    s.blob.state.fail = { status: 503, code: 'service_unavailable', kind: 'put' }
    const stored = await withHeldWebhooks(() =>
      putWhole({
        routeUrl: audioRoute(d(), id),
        headers: { authorization: `Bearer ${alice}` },
        pathname: pathnameOf(id),
        contentType: 'audio/wav',
        clientPayload: declare(5000),
        body: new Blob([wav]),
        apiUrl: s.blob.apiUrl,
        retry: FAST_RETRY,
      }),
    )
    expect(s.blob.puts.length - puts).toBe(2)
    expect(s.blob.puts.at(-1)!.kind).toBe(d().kind)
    expect(s.blob.read(stored.pathname).equals(wav)).toBe(true)
  })

  it('parts sent concurrently (the same part twice at once is one request), and complete() redeclaring the duration asks for one fresh grant', async () => {
    const id = await recording()
    const wav = sineWav(30)
    let uploadId = ''
    const mpu = uploader(d(), id, {
      clientPayload: declare(1000), // what was known when recording started
      onStateChange: (st: any) => (uploadId = st.uploadId),
    })
    await mpu.ensureCreated()
    await Promise.all([1, 2, 3, 4, 2].map((n) => mpu.uploadPart(n, partOf(wav, n))))
    expect(logOf(uploadId).partCalls).toBe(4)
    const grants = grantEvents(d()).length
    // The browser's completion event attaches before Blob's webhook (held here) can act: the
    // emulator's webhook carries the declaration of the grant the upload was created with.
    const stored = await withHeldWebhooks(async () => {
      const stored = await mpu.complete(4, { clientPayload: declare(30_000) })
      expect(grantEvents(d()).length - grants).toBe(1)
      expect(s.blob.read(stored.pathname).equals(wav)).toBe(true)
      expect((await completeEvent(d(), id, stored.url)).status).toBe(201)
      return stored
    })
    expect((await s.convex.getSession(id)).audioUrl).toBe(stored.url)
    // Completed state answers again without a request (a reload between complete and attach).
    expect(await uploader(d(), id, { state: mpu.state }).complete(4)).toEqual(stored)
    expect(grantEvents(d()).length - grants).toBe(1)
  })

  it('requestGrant answers the deployment’s kind, with its expiry', async () => {
    const id = await recording()
    const before = Date.now()
    const g = await requestGrant({
      routeUrl: audioRoute(d(), id),
      headers: { authorization: `Bearer ${alice}` },
      pathname: pathnameOf(id),
      clientPayload: declare(5000),
      multipart: true,
      apiUrl: s.blob.apiUrl,
    })
    expect(g.kind).toBe(d().kind)
    expect(g.validUntil).toBeGreaterThan(before + 3_500_000) // the route's 1 h default
    expect(g.validUntil).toBeLessThanOrEqual(Date.now() + 3_600_000)
    const url = new URL(g.urlFor('/mpu?pathname=x'))
    const headers = g.headersFor('upload')
    expect(headers['x-vercel-blob-store-id']).toBe(s.blob.storeId)
    if (g.kind === 'presigned') {
      expect(headers.authorization).toBeUndefined()
      expect(url.searchParams.get('vercel-blob-delegation')).toBeTruthy()
      expect(url.searchParams.get('vercel-blob-signature')).toBeTruthy()
    } else {
      expect(headers.authorization).toMatch(/^Bearer vercel_blob_client_/)
      expect([...url.searchParams.keys()]).toEqual(['pathname'])
    }
  })
})
