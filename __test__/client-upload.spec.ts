// Recordings of any length: the browser uploads straight to Blob with a client token the route
// mints, then the route verifies what landed and attaches it. Driven here by the unmodified
// `upload()` from `@vercel/blob/client` against the Blob-compatible store, and a route server that
// refuses bodies over 4.5 MB as Vercel does.
import crypto from 'node:crypto'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { getPayloadFromClientToken, upload } from '@vercel/blob/client'
import { startRouteServer, VERCEL_MAX_BODY_BYTES } from '../stack/route-server.mjs'
import { sineWav } from '../stack/wav.mjs'
import { createAudioHandlers, type AudioOptions } from '../index.js'
import { finaliseWebm, SessionAudioUploadError, uploadSessionAudio } from '../client.mjs'
import { completeAsWebhooksGo, errorOf, fixture, startStack, until, withHeldWebhooks, type Stack } from './helpers'

let s: Stack
let route: Awaited<ReturnType<typeof startRouteServer>>
let alice: string
let bob: string
const handlers: Record<string, unknown> = {}

beforeAll(async () => {
  s = await startStack()
  alice = await s.clerk.sessionToken({ sub: 'user_alice' })
  bob = await s.clerk.sessionToken({ sub: 'user_bob' })
  // As Vercel: a function body over 4.5 MB never reaches the route.
  route = await startRouteServer({ handlers: handlers as never, maxBodyBytes: VERCEL_MAX_BODY_BYTES })
  Object.assign(handlers, createAudioHandlers(opts()))
  // `upload()` finds the Blob API as the SDK always does.
  process.env.VERCEL_BLOB_API_URL = s.blob.apiUrl
  process.env.VERCEL_BLOB_RETRIES = '0'
})
afterAll(async () => {
  delete process.env.VERCEL_BLOB_API_URL
  delete process.env.VERCEL_BLOB_RETRIES
  await route.close()
  await s.close()
})

const opts = (extra: AudioOptions = {}) => s.options({ blobCallbackUrl: route.url, ...extra })
const recording = (userId = 'user_alice') => s.session(userId, null, { status: 'recording' })
const audioRoute = (id: string) => `${route.url}/api/listening-sessions/${id}/audio`

/** The official client upload, as a browser would run it (here in Node). */
function clientUpload(
  id: string,
  body: Buffer,
  {
    token = alice,
    contentType = 'audio/wav',
    durationMs = 5000,
    name = 'recording.wav',
    multipart = false,
    clientPayload,
  }: {
    token?: string
    contentType?: string
    durationMs?: number
    name?: string
    multipart?: boolean
    clientPayload?: string
  } = {},
) {
  return upload(`listening-sessions/${id}/${name}`, new Blob([body], { type: contentType }), {
    access: 'private',
    handleUploadUrl: audioRoute(id),
    headers: { authorization: `Bearer ${token}` },
    clientPayload: clientPayload ?? JSON.stringify({ durationMs, contentType }),
    contentType,
    multipart,
  })
}

/** The completion event `session-audio/client` sends once `upload()` resolved. */
async function complete(id: string, url: string, { token = alice, durationMs = 5000 as number | null } = {}) {
  const payload = durationMs === null ? { url } : { url, durationMs }
  return fetch(audioRoute(id), {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ type: 'session-audio.complete-upload', payload }),
  })
}

/** An answer without the field only a fresh measurement knows (a replay answers from the record). */
const recorded = ({ durationSource: _, ...rest }: Record<string, unknown>) => rest

/** A token request as `upload()` sends it, answered by the route (to read its refusals). */
async function tokenRequest(id: string, pathname: string, clientPayload: string | null, token = alice) {
  return fetch(audioRoute(id), {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({
      type: 'blob.generate-client-token',
      payload: { pathname, clientPayload, multipart: false },
    }),
  })
}

const payload = (durationMs: number | string = 5000, contentType = 'audio/wav') =>
  JSON.stringify({ durationMs, contentType })

describe('recordings too large for a function body', () => {
  it('a 12 MB recording is refused by the 4.5 MB-capped streaming POST and goes through the client flow', async () => {
    s.blob.state.holdWebhooks = true // the browser's completion first; the webhook is tested below
    const id = await recording()
    const wav = sineWav(375) // 12 MB of 16 kHz PCM
    expect(wav.length).toBeGreaterThan(12_000_000)
    const streamed = await fetch(audioRoute(id), {
      method: 'POST',
      headers: { authorization: `Bearer ${alice}`, 'x-duration-ms': '375000', 'x-content-type': 'audio/wav' },
      body: wav,
    })
    expect(streamed.status).toBe(413)
    expect(streamed.headers.get('x-vercel-error')).toBe('FUNCTION_PAYLOAD_TOO_LARGE')
    expect((await s.convex.getSession(id)).status).toBe('recording')

    const stored = await clientUpload(id, wav, { durationMs: 375000 })
    expect(stored.pathname).toMatch(new RegExp(`^listening-sessions/${id}/recording-[\\w-]+\\.wav$`))
    const res = await complete(id, stored.url, { durationMs: 375000 })
    expect(res.status).toBe(201)
    const body = await res.json()
    expect(body).toMatchObject({ sessionId: id, status: 'transcribing', audioUrl: stored.url, sizeBytes: wav.length })
    expect(body.contentType).toBe('audio/wav')
    expect(await s.convex.getSession(id)).toMatchObject({ status: 'transcribing', audioUrl: stored.url })
    s.blob.state.holdWebhooks = false
  })

  it('a 20 MiB recording goes up in multipart parts and plays back with Range seeks', async () => {
    s.blob.state.holdWebhooks = true
    const id = await recording()
    const wav = sineWav(656) // 20 MiB + a little
    expect(wav.length).toBeGreaterThan(20 * 1024 * 1024)
    const before = s.blob.calls.mpu ?? 0
    const stored = await clientUpload(id, wav, { durationMs: 656000, multipart: true })
    expect((s.blob.calls.mpu ?? 0) - before).toBeGreaterThanOrEqual(5) // create, 3 parts, complete
    expect((await complete(id, stored.url, { durationMs: 656000 })).status).toBe(201)
    expect(s.blob.read(stored.pathname).equals(wav)).toBe(true)
    for (const [start, end] of [
      [0, 1],
      [10_000_000, 10_065_535],
      [wav.length - 100, wav.length - 1],
    ]) {
      const res = await s.get(id, { token: alice, headers: { range: `bytes=${start}-${end}` } })
      expect(res.status).toBe(206)
      expect(res.headers.get('content-range')).toBe(`bytes ${start}-${end}/${wav.length}`)
      expect(Buffer.from(await res.arrayBuffer()).equals(wav.subarray(start, end + 1))).toBe(true)
    }
    s.blob.state.holdWebhooks = false
  })
})

describe('the client token', () => {
  it('is minted for exactly the pathname, the declared type, the smaller byte limit, a random suffix and an hour', async () => {
    const id = await recording('user_carol')
    await s.convex.setEntitlement('user_carol', { canRecord: true, maxUploadBytes: 2_000_000 })
    const carol = await s.clerk.sessionToken({ sub: 'user_carol' })
    const res = await tokenRequest(
      id,
      `listening-sessions/${id}/take-1.webm`,
      payload(5000, 'audio/webm;codecs=opus'),
      carol,
    )
    expect(res.status).toBe(200)
    const { type, clientToken } = await res.json()
    expect(type).toBe('blob.generate-client-token')
    expect(clientToken).toMatch(/^vercel_blob_client_localstore_/)
    // Read with the SDK's own decoder: the token is in the format it mints.
    const c = getPayloadFromClientToken(clientToken) as Record<string, any>
    expect(c).toMatchObject({
      pathname: `listening-sessions/${id}/take-1.webm`,
      allowedContentTypes: ['audio/webm;codecs=opus', 'audio/webm'],
      maximumSizeInBytes: 2_000_000,
      addRandomSuffix: true,
      allowOverwrite: false,
    })
    expect(c.validUntil - Date.now()).toBeGreaterThan(3_590_000)
    expect(c.validUntil - Date.now()).toBeLessThanOrEqual(3_600_000)
    expect(c.onUploadCompleted.callbackUrl).toBe(audioRoute(id))
    expect(JSON.parse(c.onUploadCompleted.tokenPayload)).toEqual({
      sessionId: id,
      userId: 'user_carol',
      clerkSessionId: expect.any(String),
      durationMs: 5000,
      contentType: 'audio/webm;codecs=opus',
    })
  })

  it('refusals: foreign session 404, not recording 409, not entitled 403, bad payload 400, bad pathname 400, type 415', async () => {
    const mine = await recording()
    const bobs = await recording('user_bob')
    const done = await s.session('user_alice', null, { status: 'transcribing' })
    const dan = await s.clerk.sessionToken({ sub: 'user_dan' })
    await s.convex.setEntitlement('user_dan', { canRecord: false })
    const dans = await recording('user_dan')
    const p = (id: string) => `listening-sessions/${id}/a.wav`
    const cases: [string, Promise<Response>, number, string][] = [
      [
        'no token',
        fetch(audioRoute(mine), {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            type: 'blob.generate-client-token',
            payload: { pathname: p(mine), clientPayload: payload() },
          }),
        }),
        401,
        'token_missing',
      ],
      ["someone else's session", tokenRequest(bobs, p(bobs), payload()), 404, 'session_not_found'],
      ['not recording', tokenRequest(done, p(done), payload()), 409, 'invalid_session_state'],
      ['not entitled', tokenRequest(dans, p(dans), payload(), dan), 403, 'entitlement_denied'],
      ['no clientPayload', tokenRequest(mine, p(mine), null), 400, 'invalid_client_payload'],
      ['clientPayload not JSON', tokenRequest(mine, p(mine), 'five seconds'), 400, 'invalid_client_payload'],
      [
        'no duration',
        tokenRequest(mine, p(mine), JSON.stringify({ contentType: 'audio/wav' })),
        400,
        'missing_duration',
      ],
      ['fractional duration', tokenRequest(mine, p(mine), payload(1.5)), 400, 'invalid_duration'],
      ['duration over the limit', tokenRequest(mine, p(mine), payload(5 * 3600 * 1000)), 400, 'invalid_duration'],
      ['no type', tokenRequest(mine, p(mine), JSON.stringify({ durationMs: 5000 })), 400, 'missing_content_type'],
      [
        'a type not allowed',
        tokenRequest(mine, `listening-sessions/${mine}/a.html`, payload(5000, 'text/html')),
        415,
        'unsupported_media_type',
      ],
      ['another session in the pathname', tokenRequest(mine, p(bobs), payload()), 400, 'invalid_pathname'],
      [
        'the wrong extension',
        tokenRequest(mine, `listening-sessions/${mine}/a.mp3`, payload()),
        400,
        'invalid_pathname',
      ],
      [
        'a path escape',
        tokenRequest(mine, `listening-sessions/${mine}/../x/a.wav`, payload()),
        400,
        'invalid_pathname',
      ],
      [
        'an unknown event',
        fetch(audioRoute(mine), {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${alice}` },
          body: '{"type":"blob.delete-everything","payload":{}}',
        }),
        400,
        'invalid_event',
      ],
    ]
    for (const [name, res, status, code] of cases) {
      const e = await errorOf(await res)
      expect([name, e.status, e.code]).toEqual([name, status, code])
    }
    const shown = await errorOf(await tokenRequest(mine, 'audio.wav', payload()))
    expect(shown.message).toContain(`listening-sessions/${mine}/<name>.wav`)
    expect((await s.convex.getSession(mine)).status).toBe('recording')
  })

  it('storage refuses an upload over the token size, the wrong type, or another pathname', async () => {
    await s.convex.setEntitlement('user_erin', { canRecord: true, maxUploadBytes: 100_000 })
    const erin = await s.clerk.sessionToken({ sub: 'user_erin' })
    const id = await recording('user_erin')
    const before = s.blob.list()
    await expect(clientUpload(id, sineWav(5), { token: erin })).rejects.toThrow(
      /file length cannot be greater than 100000/,
    )
    await expect(
      clientUpload(id, sineWav(1), {
        token: erin,
        contentType: 'audio/mpeg',
        clientPayload: payload(1000, 'audio/wav'),
      }),
    ).rejects.toThrow(/not allowed/)
    expect(s.blob.list()).toEqual(before)
  })

  it('client uploads can be turned off: 403 client_uploads_disabled', async () => {
    const id = await recording()
    const off = createAudioHandlers(opts({ clientUploads: false }))
    const res = await off.POST(
      new Request(audioRoute(id), {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${alice}` },
        body: JSON.stringify({
          type: 'blob.generate-client-token',
          payload: { pathname: `listening-sessions/${id}/a.wav`, clientPayload: payload() },
        }),
      }),
      { params: Promise.resolve({ sessionId: id }) },
    )
    const e = await errorOf(res)
    expect([e.status, e.code]).toEqual([403, 'client_uploads_disabled'])
    expect(e.message).toMatch(/clientUploads/)
  })
})

/** A stored blob for `id` as the Blob webhook names it, signed with `key`. */
function webhookBody(url: string, tokenPayload: string | null) {
  const meta = s.blob.meta.get(new URL(url).pathname.slice(1))
  return JSON.stringify({
    type: 'blob.upload-completed',
    payload: {
      blob: {
        url,
        downloadUrl: `${url}?download=1`,
        pathname: new URL(url).pathname.slice(1),
        contentType: meta?.contentType,
      },
      tokenPayload,
    },
  })
}

async function sendWebhook(id: string, body: string, signature: string | null) {
  return fetch(audioRoute(id), {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(signature === null ? {} : { 'x-vercel-signature': signature }) },
    body,
  })
}

const sign = (body: string, key = s.blob.token) => crypto.createHmac('sha256', key).update(body).digest('hex')

describe('completion', () => {
  it('twice: 201, then 200 with the same body; the webhook after it changes nothing', async () => {
    s.blob.state.holdWebhooks = true
    try {
      const id = await recording()
      const stored = await clientUpload(id, sineWav(5))
      const first = await complete(id, stored.url)
      expect(first.status).toBe(201)
      const again = await complete(id, stored.url)
      expect(again.status).toBe(200)
      expect(await again.json()).toEqual(recorded(await first.json()))
      const attaches = s.convex.calls.mutation
      await s.blob.releaseWebhooks()
      const hook = s.blob.webhooks.at(-1)!
      expect(hook.status).toBe(200)
      expect(hook.url).toBe(audioRoute(id))
      expect(s.convex.calls.mutation).toBe(attaches) // nothing attached twice
      expect(await s.convex.getSession(id)).toMatchObject({ status: 'transcribing', audioUrl: stored.url })
      expect(s.blob.list()).toContain(stored.pathname)
    } finally {
      s.blob.state.holdWebhooks = false
    }
  })

  it('20 replays of an attached completion are answered from the session record: no storage read', async () => {
    s.blob.state.holdWebhooks = true
    try {
      const id = await recording()
      const stored = await clientUpload(id, sineWav(5))
      const first = await complete(id, stored.url)
      expect(first.status).toBe(201)
      const want = recorded(await first.json())
      const [reads, heads, attaches] = [s.blob.calls.read, s.blob.calls.head, s.convex.calls.mutation]
      for (let i = 0; i < 20; i++) {
        const again = await complete(id, stored.url)
        expect(again.status).toBe(200)
        expect(await again.json()).toEqual(want)
      }
      expect([s.blob.calls.read - reads, s.blob.calls.head - heads]).toEqual([0, 0])
      expect(s.convex.calls.mutation).toBe(attaches)
    } finally {
      s.blob.state.holdWebhooks = false
      await s.blob.releaseWebhooks()
    }
  })

  it('10 completions of one blob at once: one reads storage and attaches, the others answer from the record', async () => {
    await withHeldWebhooks(s, async () => {
      const id = await recording()
      const stored = await clientUpload(id, sineWav(5))
      const [reads, heads, attaches] = [s.blob.calls.read, s.blob.calls.head, s.convex.calls.mutation]
      const answers = await Promise.all(Array.from({ length: 10 }, () => complete(id, stored.url)))
      expect(answers.map((r) => r.status).sort()).toEqual([200, 200, 200, 200, 200, 200, 200, 200, 200, 201])
      // one head, the sniff and the one whole read; one attach
      expect([s.blob.calls.head - heads, s.blob.calls.read - reads]).toEqual([1, 2])
      expect(s.convex.calls.mutation - attaches).toBe(1)
    })
  })

  it('durationMs may be left out of the completion: the measured length is recorded', async () => {
    await withHeldWebhooks(s, async () => {
      const id = await recording()
      const stored = await clientUpload(id, sineWav(7), { durationMs: 7000 })
      const res = await complete(id, stored.url, { durationMs: null })
      expect(res.status).toBe(201)
      expect(await res.json()).toMatchObject({ durationMs: 7000, durationSource: 'measured' })
      expect((await s.convex.getSession(id)).durationMs).toBe(7000)
    })
  })

  it('a blob older than the client-token lifetime is 400 upload_expired, not final: kept for the sweep, the browser sends again', async () => {
    s.blob.state.holdWebhooks = true
    Object.assign(handlers, createAudioHandlers(opts({ clientTokenTtlMs: 1000 })))
    try {
      const id = await recording()
      const stored = await clientUpload(id, sineWav(2), { durationMs: 2000 })
      await new Promise((r) => setTimeout(r, 1500))
      const e = await errorOf(await complete(id, stored.url, { durationMs: 2000 }))
      expect([e.status, e.code, e.final]).toEqual([400, 'upload_expired', false])
      expect(e.message).toMatch(/upload the recording again/)
      // Never attached (the sweep may be deleting it) and never deleted here: the sweep's alone.
      expect(s.blob.list()).toContain(stored.pathname)
      expect((await s.convex.getSession(id)).status).toBe('recording')
    } finally {
      Object.assign(handlers, createAudioHandlers(opts()))
      s.blob.state.holdWebhooks = false
      await s.blob.releaseWebhooks()
    }
  })

  it('the browser event and the webhook at the same moment: attached exactly once, the blob kept', async () => {
    for (let round = 0; round < 5; round++) {
      s.blob.state.holdWebhooks = true
      const id = await recording()
      const stored = await clientUpload(id, sineWav(5))
      const res = await completeAsWebhooksGo(s, () => complete(id, stored.url))
      expect([200, 201]).toContain(res.status)
      expect(s.blob.webhooks.at(-1)!.status).toBe(200)
      expect(await s.convex.getSession(id)).toMatchObject({ status: 'transcribing', audioUrl: stored.url })
      expect(s.blob.list()).toContain(stored.pathname)
    }
  })

  it('the webhook alone (the tab was closed) attaches', async () => {
    const id = await recording()
    const stored = await clientUpload(id, sineWav(5), { durationMs: 5000 })
    expect(await until(async () => (await s.convex.getSession(id)).status === 'transcribing', 5000)).toBe(true)
    expect(await s.convex.getSession(id)).toMatchObject({
      audioUrl: stored.url,
      durationMs: 5000,
      audioSizeBytes: sineWav(5).length,
    })
    // and the browser's event arriving late is answered as already done
    expect((await complete(id, stored.url)).status).toBe(200)
  })

  it('a webhook with a missing or wrong signature is 401 and changes nothing', async () => {
    s.blob.state.holdWebhooks = true
    try {
      const id = await recording()
      const stored = await clientUpload(id, sineWav(5))
      const tokenPayload = JSON.stringify({
        sessionId: id,
        userId: 'user_alice',
        clerkSessionId: 'sess_x',
        durationMs: 5000,
        contentType: 'audio/wav',
      })
      const body = webhookBody(stored.url, tokenPayload)
      for (const signature of [null, '', 'zz', sign(body, 'vercel_blob_rw_localstore_wrongkey'), sign(body + ' ')]) {
        const e = await errorOf(await sendWebhook(id, body, signature))
        expect([e.status, e.code]).toEqual([401, 'invalid_signature'])
      }
      expect((await s.convex.getSession(id)).status).toBe('recording')
      expect(s.blob.list()).toContain(stored.pathname)
    } finally {
      s.blob.state.holdWebhooks = false
    }
  })

  it('refusals delete the blob and leave the session as it was', async () => {
    s.blob.state.holdWebhooks = true
    try {
      // HTML declared as WebM: storage accepts it (the type is allowed), the route does not.
      const html = await recording()
      const page = Buffer.from('<!doctype html><html><body>not audio</body></html>'.repeat(20))
      const fake = await clientUpload(html, page, { contentType: 'audio/webm', name: 'x.webm' })
      const e1 = await errorOf(await complete(html, fake.url))
      expect([e1.status, e1.code]).toEqual([415, 'content_mismatch'])
      expect(s.blob.list()).not.toContain(fake.pathname)
      expect((await s.convex.getSession(html)).status).toBe('recording')

      // Over the user's limit by the time it landed.
      await s.convex.setEntitlement('user_frank', { canRecord: true })
      const frank = await s.clerk.sessionToken({ sub: 'user_frank' })
      const big = await recording('user_frank')
      const landed = await clientUpload(big, sineWav(10), { token: frank })
      await s.convex.setEntitlement('user_frank', { canRecord: true, maxUploadBytes: 1000 })
      const e2 = await errorOf(await complete(big, landed.url, { token: frank }))
      expect([e2.status, e2.code]).toEqual([413, 'payload_too_large'])
      expect(s.blob.list()).not.toContain(landed.pathname)
      expect((await s.convex.getSession(big)).status).toBe('recording')

      // A missing blob.
      const gone = await recording()
      const missing = `${s.blob.url}/listening-sessions/${gone}/never-uploaded.wav`
      const e3 = await errorOf(await complete(gone, missing))
      expect([e3.status, e3.code]).toEqual([404, 'upload_not_found'])
    } finally {
      s.blob.state.holdWebhooks = false
    }
  })

  it("a URL from another session or another store is refused and never deleted (it may be someone else's)", async () => {
    s.blob.state.holdWebhooks = true
    try {
      const bobs = await recording('user_bob')
      const bobsBlob = await clientUpload(bobs, sineWav(5), { token: bob })
      const mine = await recording()
      const e1 = await errorOf(await complete(mine, bobsBlob.url))
      expect([e1.status, e1.code]).toEqual([400, 'invalid_blob_url'])
      // Even naming Bob's session: it is not Alice's, so nothing happens to Bob's blob.
      const e2 = await errorOf(await complete(bobs, bobsBlob.url))
      expect([e2.status, e2.code]).toEqual([404, 'session_not_found'])
      for (const other of [
        `https://otherstore.private.blob.vercel-storage.com/listening-sessions/${mine}/a.wav`,
        `http://127.0.0.1:1/listening-sessions/${mine}/a.wav`,
        'not a url',
      ]) {
        const e = await errorOf(await complete(mine, other))
        expect([e.status, e.code]).toEqual([400, 'invalid_blob_url'])
      }
      expect(s.blob.list()).toContain(bobsBlob.pathname)
      expect((await s.convex.getSession(mine)).status).toBe('recording')
    } finally {
      s.blob.state.holdWebhooks = false
    }
  })

  it('two blobs completed concurrently for one session: one wins, the other is deleted', async () => {
    s.blob.state.holdWebhooks = true
    try {
      const id = await recording()
      const [a, b] = await Promise.all([
        clientUpload(id, sineWav(5)),
        clientUpload(id, sineWav(6), { durationMs: 6000 }),
      ])
      const [ra, rb] = await Promise.all([complete(id, a.url), complete(id, b.url, { durationMs: 6000 })])
      const statuses = [ra.status, rb.status].sort()
      expect(statuses).toEqual([201, 409])
      const winner = ra.status === 201 ? a : b
      const loser = ra.status === 201 ? b : a
      expect((await s.convex.getSession(id)).audioUrl).toBe(winner.url)
      expect(s.blob.list()).toContain(winner.pathname)
      expect(s.blob.list()).not.toContain(loser.pathname)
    } finally {
      s.blob.state.holdWebhooks = false
    }
  })
})

describe('the duration of what landed is measured from one whole read', () => {
  // The browser's completion event decides here; Blob's webhook comes after.
  beforeEach(() => {
    s.blob.state.holdWebhooks = true
  })
  afterEach(async () => {
    s.blob.state.holdWebhooks = false
    await s.blob.releaseWebhooks()
  })

  it('a completion declaring 1 s for 30 s of audio is 400 duration_mismatch, and the blob is deleted', async () => {
    const id = await recording()
    const audio = sineWav(30) // 960 KB, read once whole
    const stored = await clientUpload(id, audio, { durationMs: 1000 })
    const reads = s.blob.calls.read
    const res = await complete(id, stored.url, { durationMs: 1000 })
    const e = await errorOf(res)
    expect([e.status, e.code]).toEqual([400, 'duration_mismatch'])
    expect(s.blob.calls.read - reads).toBeLessThanOrEqual(2) // the sniff and the one whole read
    expect(s.blob.list()).not.toContain(stored.pathname)
    expect((await s.convex.getSession(id)).status).toBe('recording')
  })

  it('an honest completion records the measured length', async () => {
    const id = await recording()
    const stored = await clientUpload(id, sineWav(30), { durationMs: 29_500 })
    const res = await complete(id, stored.url, { durationMs: 29_500 })
    expect(res.status).toBe(201)
    expect(await res.json()).toMatchObject({ durationMs: 30_000, durationSource: 'measured' })
    expect((await s.convex.getSession(id)).durationMs).toBe(30_000)
  })

  it('a WebM whose Duration claims 5 s in front of 60 s of audio is 400 inconsistent_audio, and the blob is deleted', async () => {
    const webm = Buffer.from(fixture('sweep-60s.webm'))
    const at = webm.indexOf(Buffer.from([0x44, 0x89, 0x88])) // Info Duration, an 8-byte float
    webm.writeDoubleBE(5_000, at + 3)
    const id = await recording()
    const stored = await clientUpload(id, webm, { contentType: 'audio/webm', name: 'take.webm', durationMs: 5_000 })
    const e = await errorOf(await complete(id, stored.url, { durationMs: 5_000 }))
    expect([e.status, e.code]).toEqual([400, 'inconsistent_audio'])
    expect(s.blob.list()).not.toContain(stored.pathname)
    expect((await s.convex.getSession(id)).status).toBe('recording')
  })

  it('a MediaRecorder-shaped WebM (no Duration) is measured from its packets', async () => {
    const id = await recording()
    const webm = fixture('tone-5s-live.webm')
    const stored = await clientUpload(id, webm, {
      contentType: 'audio/webm',
      name: 'take.webm',
      durationMs: 5_000,
    })
    const res = await complete(id, stored.url, { durationMs: 5_000 })
    expect(res.status).toBe(201)
    const body = await res.json()
    expect(body.durationSource).toBe('measured')
    expect(Math.abs(body.durationMs - 5_000)).toBeLessThanOrEqual(50)
  })
})

describe('session-audio/client', () => {
  const call = (id: string, blob: Blob, extra: Record<string, unknown> = {}) =>
    uploadSessionAudio(id, blob, {
      durationMs: 5000,
      routeUrl: audioRoute(id),
      headers: { authorization: `Bearer ${alice}` },
      ...extra,
    })

  it('uploads, reports progress up to 100 %, and resolves with the 201 body', async () => {
    const id = await recording()
    const progress: { loaded: number; total: number; percentage: number }[] = []
    const wav = sineWav(5)
    const result = await call(id, new Blob([wav], { type: 'audio/wav' }), {
      onProgress: (p: never) => progress.push(p),
    })
    expect(result).toMatchObject({ sessionId: id, status: 'transcribing', sizeBytes: wav.length, durationMs: 5000 })
    expect(progress.length).toBeGreaterThan(0)
    expect(progress.at(-1)).toMatchObject({ percentage: 100, total: wav.length })
    expect((await s.convex.getSession(id)).status).toBe('transcribing')
  })

  it('blobApiUrl says where Blob is, whatever the environment says', async () => {
    const saved = process.env.VERCEL_BLOB_API_URL
    process.env.VERCEL_BLOB_API_URL = 'http://127.0.0.1:9/api/blob' // nothing listens there
    const one = () => new Blob([sineWav(1)], { type: 'audio/wav' })
    try {
      const lost = await call(await recording(), one(), { durationMs: 1000, retry: { attempts: 1 } }).catch((e) => e)
      expect(lost).toBeInstanceOf(SessionAudioUploadError)
      const id = await recording()
      const result = await call(id, one(), { durationMs: 1000, blobApiUrl: s.blob.apiUrl })
      expect(result).toMatchObject({ sessionId: id, status: 'transcribing' })
    } finally {
      process.env.VERCEL_BLOB_API_URL = saved
    }
  })

  it("rejects with the route's own code when the token or the completion is refused", async () => {
    s.blob.state.holdWebhooks = true // the completion's own answer, not the webhook's
    const bobs = await recording('user_bob')
    const err = await call(bobs, new Blob([sineWav(1)], { type: 'audio/wav' })).catch((e) => e)
    expect(err).toBeInstanceOf(SessionAudioUploadError)
    expect([err.status, err.code]).toEqual([404, 'session_not_found'])
    const id = await recording()
    const html = await call(id, new Blob(['<html>'.repeat(10)], { type: 'text/html' })).catch((e) => e)
    expect([html.status, html.code]).toEqual([415, 'unsupported_media_type'])
    const fake = await call(id, new Blob(['<html>'.repeat(10)], { type: 'audio/webm' })).catch((e) => e)
    expect([fake.status, fake.code]).toEqual([415, 'content_mismatch'])
    expect((await s.convex.getSession(id)).status).toBe('recording')
    s.blob.state.holdWebhooks = false
  })

  it('a MediaRecorder WebM is finalised before it goes up: what lands has a Duration and Cues', async () => {
    s.blob.state.holdWebhooks = true // the completion's own answer, not the webhook's
    const raw = fixture('chromium-20s-timeslice.webm')
    const id = await recording()
    const result = await call(id, new Blob([raw], { type: 'audio/webm;codecs=opus' }), { durationMs: 20_000 })
    expect(result).toMatchObject({ status: 'transcribing', durationSource: 'measured' })
    const stored = s.blob.read(new URL(result.audioUrl).pathname.slice(1))
    const expected = Buffer.from(await (await finaliseWebm(new Blob([raw]))).arrayBuffer())
    expect(stored.equals(raw)).toBe(false)
    expect(stored.equals(expected)).toBe(true)
    expect(result.sizeBytes).toBe(expected.length)
    s.blob.state.holdWebhooks = false
  })

  it('an abort signal cancels the upload: nothing is attached', async () => {
    const id = await recording()
    const before = s.blob.list()
    const controller = new AbortController()
    const pending = call(id, new Blob([sineWav(300)], { type: 'audio/wav' }), { signal: controller.signal })
    controller.abort()
    const err = await pending.catch((e) => e)
    expect(err?.name).toBe('AbortError')
    expect(s.blob.list()).toEqual(before)
    expect((await s.convex.getSession(id)).status).toBe('recording')
  })
})
