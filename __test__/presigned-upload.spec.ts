// Recordings of any length on a deployment set up as Vercel sets one up today: OIDC and
// BLOB_STORE_ID, no read-write token, so no client tokens. The browser's unmodified
// `uploadPresigned()` from `@vercel/blob/client` asks the route for a presigned URL payload (the
// `blob.generate-presigned-url` event), uploads with it (single PUT or multipart), and the route
// attaches what landed once the browser's event or Blob's Ed25519-signed webhook arrives. The route
// server adds `x-vercel-oidc-token` to every request it hands the route, as Vercel does, and the
// test process has no Blob credentials in its environment: the token arrives only per request.
import crypto from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { uploadPresigned } from '@vercel/blob/client'
import { startRouteServer, VERCEL_MAX_BODY_BYTES } from '../stack/route-server.mjs'
import { sineWav } from '../stack/wav.mjs'
import { createAudioHandlers, type AudioOptions } from '../index.js'
import { SessionAudioUploadError, uploadSessionAudio } from '../client.mjs'
import { createWebmFinaliser } from '../client/finalise/webm.mjs'
import {
  completeAsWebhooksGo,
  errorOf,
  finalisedForms,
  fixture,
  startStack,
  until,
  withHeldWebhooks,
  type Stack,
} from './helpers'

const TTL_MS = 3_600_000
let s: Stack
let route: Awaited<ReturnType<typeof startRouteServer>>
let alice: string
/** What the platform hands each request as `x-vercel-oidc-token` (`null`: none). */
let platformOidc: string | null = null
const handlers: Record<string, unknown> = {}

beforeAll(async () => {
  s = await startStack()
  alice = await s.clerk.sessionToken({ sub: 'user_alice' })
  platformOidc = s.blob.oidcToken()
  route = await startRouteServer({
    handlers: handlers as never,
    maxBodyBytes: VERCEL_MAX_BODY_BYTES,
    requestHeaders: () => (platformOidc ? { 'x-vercel-oidc-token': platformOidc } : {}),
  })
  use(s.oidcOptions({ blobCallbackUrl: route.url }))
  for (const k of ['VERCEL_OIDC_TOKEN', 'BLOB_STORE_ID', 'BLOB_READ_WRITE_TOKEN']) delete process.env[k]
  // The SDK in the "browser" finds the Blob API as it always does; it has no credentials.
  process.env.VERCEL_BLOB_API_URL = s.blob.apiUrl
  process.env.VERCEL_BLOB_RETRIES = '0'
})
afterAll(async () => {
  delete process.env.VERCEL_BLOB_API_URL
  delete process.env.VERCEL_BLOB_RETRIES
  await route?.close()
  await s?.close()
})

/** Serve the route with handlers built from `options`. */
const use = (options: AudioOptions) => Object.assign(handlers, createAudioHandlers(options))
const recording = (userId = 'user_alice') => s.session(userId, null, { status: 'recording' })
const audioRoute = (id: string) => `${route.url}/api/listening-sessions/${id}/audio`
const payload = (durationMs: number | string = 5000, contentType = 'audio/wav') =>
  JSON.stringify({ durationMs, contentType })

/** The official presigned upload, as a browser runs it (here in Node). */
function presignedUpload(
  id: string,
  body: Buffer,
  { token = alice, contentType = 'audio/wav', durationMs = 5000, multipart = false } = {},
) {
  return uploadPresigned(`listening-sessions/${id}/recording.wav`, new Blob([body], { type: contentType }), {
    access: 'private',
    handleUploadUrl: audioRoute(id),
    headers: { authorization: `Bearer ${token}` },
    clientPayload: payload(durationMs, contentType),
    contentType,
    multipart,
  })
}

/** A JSON event to the route, as the browser sends it. */
function event(id: string, type: string, body: Record<string, unknown>, token: string | null = alice) {
  return fetch(audioRoute(id), {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ type, payload: body }),
  })
}
const presignRequest = (id: string, pathname: string, clientPayload: string | null, token: string | null = alice) =>
  event(id, 'blob.generate-presigned-url', { pathname, clientPayload, multipart: false }, token)
const complete = (id: string, url: string, durationMs = 5000) =>
  event(id, 'session-audio.complete-upload', { url, durationMs })

describe('uploadPresigned() through the route, over OIDC', () => {
  it('a single PUT: a signed token scoped to the pathname, put, the type, the byte limit and the TTL; no credential on the PUT; the browser event attaches, the Ed25519 webhook after it changes nothing', async () => {
    const id = await recording()
    const wav = sineWav(5)
    const issued = s.blob.signedTokens.length
    let stored: Awaited<ReturnType<typeof uploadPresigned>> | undefined
    await withHeldWebhooks(s, async () => {
      const before = Date.now()
      stored = await presignedUpload(id, wav)
      // What the route asked Blob for, with the request's OIDC token.
      expect(s.blob.signedTokens.length).toBe(issued + 1)
      const { body, kind } = s.blob.signedTokens.at(-1)!
      expect(kind).toBe('oidc')
      expect(body).toMatchObject({
        pathname: `listening-sessions/${id}/recording.wav`,
        operations: ['put'],
        maximumSizeInBytes: 100 * 1024 * 1024,
        allowedContentTypes: ['audio/wav'],
      })
      expect(body.validUntil).toBeGreaterThanOrEqual(before + TTL_MS - 1000)
      expect(body.validUntil).toBeLessThanOrEqual(Date.now() + TTL_MS)
      // The upload itself: presigned, no bearer, a random suffix.
      const put = s.blob.puts.at(-1)!
      expect(put.kind).toBe('presigned')
      expect(put.headers.authorization).toBeUndefined()
      expect(stored.pathname).toMatch(new RegExp(`^listening-sessions/${id}/recording-[\\w-]+\\.wav$`))
      const res = await complete(id, stored.url)
      expect(res.status).toBe(201)
      expect(await res.json()).toMatchObject({ sessionId: id, status: 'transcribing', sizeBytes: wav.length })
    })
    const hook = s.blob.webhooks.at(-1)!
    expect([hook.signedWith, hook.signature.length, hook.status]).toEqual(['ed25519', 128, 200])
    expect(await s.convex.getSession(id)).toMatchObject({ status: 'transcribing', audioUrl: stored!.url })
    expect(s.blob.read(stored!.pathname).equals(wav)).toBe(true)
  })

  it('multipart: a 20 MiB recording in presigned parts (one signature for every call), then played back with Range', async () => {
    const id = await recording()
    const wav = sineWav(660) // 21 MB of 16 kHz PCM: three 8 MiB parts
    const authBefore = s.blob.auth.length
    let stored: { url: string } | undefined
    await withHeldWebhooks(s, async () => {
      stored = await presignedUpload(id, wav, { durationMs: 660_000, multipart: true })
      const mpu = s.blob.auth.slice(authBefore).filter((a: any) => a.op === 'mpu')
      expect(mpu.length).toBeGreaterThanOrEqual(5) // create, ≥ 3 parts, complete
      expect(mpu.every((a: any) => a.kind === 'presigned')).toBe(true)
      const res = await complete(id, stored.url, 660_000)
      expect(res.status).toBe(201)
      expect((await res.json()).sizeBytes).toBe(wav.length)
    })
    expect((await s.convex.getSession(id)).audioUrl).toBe(stored!.url)
    const got = await s.get(id, {
      token: alice,
      headers: { range: 'bytes=1000-1999', 'x-vercel-oidc-token': platformOidc! },
      handlers: handlers as never,
    })
    expect(got.status).toBe(206)
    expect(Buffer.from(await got.arrayBuffer()).equals(wav.subarray(1000, 2000))).toBe(true)
  })

  it('the webhook alone (the tab was closed) attaches: Ed25519 checked with BLOB_WEBHOOK_PUBLIC_KEY, the OIDC token from the platform', async () => {
    const id = await recording()
    const stored = await presignedUpload(id, sineWav(5))
    expect(await until(async () => (await s.convex.getSession(id)).status === 'transcribing', 5000)).toBe(true)
    expect(await s.convex.getSession(id)).toMatchObject({ audioUrl: stored.url, durationMs: 5000 })
    // The browser's event arriving late is answered from the record.
    expect((await complete(id, stored.url)).status).toBe(200)
  })

  it('the browser event and the webhook at the same moment: attached exactly once, the blob kept', async () => {
    for (let round = 0; round < 3; round++) {
      s.blob.state.holdWebhooks = true
      const id = await recording()
      const stored = await presignedUpload(id, sineWav(5))
      const res = await completeAsWebhooksGo(s, () => complete(id, stored.url))
      expect([200, 201]).toContain(res.status)
      expect(s.blob.webhooks.at(-1)!.status).toBe(200)
      expect(await s.convex.getSession(id)).toMatchObject({ status: 'transcribing', audioUrl: stored.url })
      expect(s.blob.list()).toContain(stored.pathname)
    }
  })
})

describe('the completion rewrite over OIDC (docs/stop-to-transcribing.md, C)', () => {
  it("a provisional WebM uploaded presigned is rewritten with the request's OIDC token: finish()'s bytes attached, the provisional blob gone", async () => {
    const f = finalisedForms(fixture('chromium-20s-timeslice.webm'), createWebmFinaliser)
    const id = await recording()
    const auth = s.blob.auth.length
    let stored: Awaited<ReturnType<typeof uploadPresigned>> | undefined
    await withHeldWebhooks(s, async () => {
      stored = await uploadPresigned(`listening-sessions/${id}/take.webm`, new Blob([f.provisional]), {
        access: 'private',
        handleUploadUrl: audioRoute(id),
        headers: { authorization: `Bearer ${alice}` },
        clientPayload: payload(Math.round(f.durationMs), 'audio/webm'),
        contentType: 'audio/webm',
      })
      const res = await complete(id, stored.url, Math.round(f.durationMs))
      expect(res.status).toBe(201)
    })
    const finalPathname = stored!.pathname.replace(/\.webm$/, '.final.webm')
    expect(await s.convex.getSession(id)).toMatchObject({ status: 'transcribing', audioPathname: finalPathname })
    expect(s.blob.read(finalPathname).equals(f.final)).toBe(true)
    expect(s.blob.list()).not.toContain(stored!.pathname)
    // The route's own multipart calls went with the OIDC token of the request.
    const mpu = s.blob.auth.slice(auth).filter((a: any) => a.op === 'mpu')
    expect(mpu.length).toBeGreaterThan(0)
    expect(mpu.every((a: any) => a.kind === 'oidc')).toBe(true)
  })
})

describe('a grant asked for while recording', () => {
  it('leaves the length out ("recording": true): the webhook attaches the measured length, and the limits apply to it', async () => {
    const id = await recording()
    const wav = sineWav(7)
    const grant = await presignRequest(
      id,
      `listening-sessions/${id}/recording.wav`,
      JSON.stringify({ contentType: 'audio/wav', recording: true }),
    )
    expect(grant.status).toBe(200)
    // The tokenPayload carries no declared length, so the webhook measures alone.
    const tokenPayload = JSON.parse(
      (await grant.json()).presignedUrlPayload.params['vercel-blob-callback-token-payload'],
    )
    expect(tokenPayload).not.toHaveProperty('durationMs')
    const stored = await uploadPresigned(`listening-sessions/${id}/recording.wav`, new Blob([wav]), {
      access: 'private',
      handleUploadUrl: audioRoute(id),
      headers: { authorization: `Bearer ${alice}` },
      clientPayload: JSON.stringify({ contentType: 'audio/wav', recording: true }),
      contentType: 'audio/wav',
    })
    expect(await until(async () => (await s.convex.getSession(id)).status === 'transcribing', 5000)).toBe(true)
    expect(await s.convex.getSession(id)).toMatchObject({ audioUrl: stored.url, durationMs: 7000 })

    // A user allowed 5 s: the grant passes (the length is unknown), the measured 7 s does not.
    const carol = await s.clerk.sessionToken({ sub: 'user_carol' })
    await s.convex.setEntitlement('user_carol', { canRecord: true, maxRecordingMs: 5000 })
    const hers = await recording('user_carol')
    const held = await uploadPresigned(`listening-sessions/${hers}/recording.wav`, new Blob([wav]), {
      access: 'private',
      handleUploadUrl: audioRoute(hers),
      headers: { authorization: `Bearer ${carol}` },
      clientPayload: JSON.stringify({ contentType: 'audio/wav', recording: true }),
      contentType: 'audio/wav',
    })
    expect(await until(() => !s.blob.list().includes(held.pathname), 5000)).toBe(true)
    expect((await s.convex.getSession(hers)).status).toBe('recording')
    // Only `true` leaves the length out; anything else is refused.
    const bad = await errorOf(
      await presignRequest(
        id,
        `listening-sessions/${id}/a.wav`,
        JSON.stringify({ contentType: 'audio/wav', recording: 'yes' }),
      ),
    )
    expect([bad.status, bad.code]).toEqual([400, 'invalid_client_payload'])
  })
})

describe('refusals', () => {
  it('the same checks and codes as a client token, and Blob is asked for nothing', async () => {
    const mine = await recording()
    const bobs = await recording('user_bob')
    const done = await s.session('user_alice', null, { status: 'transcribing' })
    const dan = await s.clerk.sessionToken({ sub: 'user_dan' })
    await s.convex.setEntitlement('user_dan', { canRecord: false })
    const dans = await recording('user_dan')
    const p = (id: string) => `listening-sessions/${id}/a.wav`
    const issued = s.blob.signedTokens.length
    const cases: [string, Promise<Response>, number, string][] = [
      ['no token', presignRequest(mine, p(mine), payload(), null), 401, 'token_missing'],
      ["someone else's session", presignRequest(bobs, p(bobs), payload()), 404, 'session_not_found'],
      ['not recording', presignRequest(done, p(done), payload()), 409, 'invalid_session_state'],
      ['not entitled', presignRequest(dans, p(dans), payload(), dan), 403, 'entitlement_denied'],
      ['no clientPayload', presignRequest(mine, p(mine), null), 400, 'invalid_client_payload'],
      [
        'no duration',
        presignRequest(mine, p(mine), JSON.stringify({ contentType: 'audio/wav' })),
        400,
        'missing_duration',
      ],
      ['duration over the limit', presignRequest(mine, p(mine), payload(5 * 3600 * 1000)), 400, 'invalid_duration'],
      [
        'a type not allowed',
        presignRequest(mine, `listening-sessions/${mine}/a.html`, payload(5000, 'text/html')),
        415,
        'unsupported_media_type',
      ],
      ['another session in the pathname', presignRequest(mine, p(bobs), payload()), 400, 'invalid_pathname'],
      [
        'a path escape',
        presignRequest(mine, `listening-sessions/${mine}/../x/a.wav`, payload()),
        400,
        'invalid_pathname',
      ],
      [
        'no pathname',
        event(mine, 'blob.generate-presigned-url', { clientPayload: payload() }),
        400,
        'invalid_pathname',
      ],
    ]
    for (const [name, res, status, code] of cases) {
      const e = await errorOf(await res)
      expect([name, e.status, e.code]).toEqual([name, status, code])
    }
    expect(s.blob.signedTokens.length).toBe(issued)
    expect((await s.convex.getSession(mine)).status).toBe('recording')
  })

  it('the answer carries exactly the signed parameters: random suffix, no overwrite, the type, the byte limit, the callback and who asked', async () => {
    const id = await recording()
    const res = await presignRequest(id, `listening-sessions/${id}/a.wav`, payload())
    expect(res.status).toBe(200)
    const { params, delegationToken, signature } = (await res.json()).presignedUrlPayload
    expect(Object.keys(params).sort()).toEqual([
      'vercel-blob-add-random-suffix',
      'vercel-blob-allow-overwrite',
      'vercel-blob-allowed-content-types',
      'vercel-blob-callback-token-payload',
      'vercel-blob-callback-url',
      'vercel-blob-maximum-size-in-bytes',
    ])
    expect(params).toMatchObject({
      'vercel-blob-add-random-suffix': 'true',
      'vercel-blob-allow-overwrite': 'false',
      'vercel-blob-allowed-content-types': 'audio/wav',
      'vercel-blob-maximum-size-in-bytes': String(100 * 1024 * 1024),
      'vercel-blob-callback-url': audioRoute(id),
    })
    expect(JSON.parse(params['vercel-blob-callback-token-payload'])).toMatchObject({
      sessionId: id,
      userId: 'user_alice',
      durationMs: 5000,
      contentType: 'audio/wav',
    })
    expect(signature).toMatch(/^[\w-]{43}$/)
    expect(delegationToken.split('.')).toHaveLength(2)
  })

  it('a declared type holding a comma (it would widen the signed type list) is 400 and Blob is asked for nothing', async () => {
    const id = await recording()
    const issued = s.blob.signedTokens.length
    const e = await errorOf(
      await presignRequest(id, `listening-sessions/${id}/a.webm`, payload(5000, 'audio/webm;x=a,text/html')),
    )
    expect([e.status, e.code]).toEqual([400, 'invalid_content_type'])
    expect(s.blob.signedTokens.length).toBe(issued)
  })

  it('Blob failing or refusing the signed token: 502 storage_failed after retries, 502 blob_access_denied at once', async () => {
    const id = await recording()
    const calls = () => s.blob.calls.signedToken ?? 0
    let before = calls()
    s.blob.state.fail = { kind: 'signed-token', status: 503, code: 'service_unavailable', sticky: true }
    try {
      const outage = await errorOf(await presignRequest(id, `listening-sessions/${id}/a.wav`, payload()))
      expect([outage.status, outage.code]).toEqual([502, 'storage_failed'])
      expect(calls() - before).toBe(3)
      before = calls()
      s.blob.state.fail = { kind: 'signed-token', status: 403, code: 'forbidden', sticky: true }
      const denied = await errorOf(await presignRequest(id, `listening-sessions/${id}/a.wav`, payload()))
      expect([denied.status, denied.code]).toEqual([502, 'blob_access_denied'])
      expect(calls() - before).toBe(1)
    } finally {
      s.blob.state.fail = null
    }
    expect((await s.convex.getSession(id)).status).toBe('recording')
  })

  it('blob.generate-client-token on this deployment is 400 client_tokens_need_read_write_token, naming presigned uploads', async () => {
    const id = await recording()
    const res = await event(id, 'blob.generate-client-token', {
      pathname: `listening-sessions/${id}/a.wav`,
      clientPayload: payload(),
      multipart: false,
    })
    const e = await errorOf(res)
    expect([e.status, e.code]).toEqual([400, 'client_tokens_need_read_write_token'])
    expect(e.message).toContain('uploadPresigned()')
  })

  it('a webhook with an HMAC-style, tampered, foreign-key or missing signature is 401 and changes nothing', async () => {
    const id = await recording()
    let stored: { url: string; pathname: string } | undefined
    let body = ''
    await withHeldWebhooks(s, async () => {
      stored = await presignedUpload(id, sineWav(5))
      s.blob.state.holdWebhooks = false
      // The genuine webhook's body, re-sent with other signatures.
      body = JSON.stringify({
        type: 'blob.upload-completed',
        payload: {
          blob: { url: stored.url, pathname: stored.pathname },
          tokenPayload: JSON.stringify({
            sessionId: id,
            userId: 'user_alice',
            clerkSessionId: 'sess_x',
            durationMs: 5000,
            contentType: 'audio/wav',
          }),
        },
      })
      const foreign = crypto.generateKeyPairSync('ed25519').privateKey
      const send = (signature: string | null) =>
        fetch(audioRoute(id), {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            ...(signature === null ? {} : { 'x-vercel-signature': signature }),
          },
          body,
        })
      const hmac = crypto.createHmac('sha256', s.blob.token).update(body).digest('hex')
      const foreignSig = crypto.sign(null, Buffer.from(body), foreign).toString('hex')
      const genuine = s.blob.webhooks.at(-1)!.signature as string
      for (const [name, signature] of [
        ['HMAC keyed by the read-write token (none is configured here)', hmac],
        ['another key', foreignSig],
        ["the genuine webhook's signature over another body", genuine],
        ['missing', null],
        ['127 hex characters', foreignSig.slice(1)],
      ] as [string, string | null][]) {
        const e = await errorOf(await send(signature))
        expect([name, e.status, e.code]).toEqual([name, 401, 'invalid_signature'])
      }
      expect((await s.convex.getSession(id)).status).toBe('recording')
    })
    // Released: the genuine webhook attaches.
    expect(await until(async () => (await s.convex.getSession(id)).status === 'transcribing', 5000)).toBe(true)
  })

  it("an expired x-vercel-oidc-token is the request's 400 invalid_oidc_token, none at all 503 config_missing; Blob is asked for nothing", async () => {
    const id = await recording()
    const issued = s.blob.signedTokens.length
    try {
      platformOidc = s.blob.oidcToken({ expiresInSec: -60 })
      const expired = await errorOf(await presignRequest(id, `listening-sessions/${id}/a.wav`, payload()))
      expect([expired.status, expired.code]).toEqual([400, 'invalid_oidc_token'])
      expect(expired.message).not.toContain(platformOidc)
      platformOidc = null
      const none = await errorOf(await presignRequest(id, `listening-sessions/${id}/a.wav`, payload()))
      expect([none.status, none.code]).toEqual([503, 'config_missing'])
    } finally {
      platformOidc = s.blob.oidcToken()
    }
    expect(s.blob.signedTokens.length).toBe(issued)
    expect((await s.convex.getSession(id)).status).toBe('recording')
  })

  it('without BLOB_WEBHOOK_PUBLIC_KEY a presigned upload that gets a webhook is 503 config_missing naming it; a broken key is 503 config_invalid', async () => {
    const id = await recording()
    try {
      use(s.oidcOptions({ blobCallbackUrl: route.url, blobWebhookPublicKey: undefined }))
      const missing = await errorOf(await presignRequest(id, `listening-sessions/${id}/a.wav`, payload()))
      expect([missing.status, missing.code]).toEqual([503, 'config_missing'])
      expect(missing.message).toContain('BLOB_WEBHOOK_PUBLIC_KEY')
      // Without a callback there is no webhook to check: the key is not needed.
      use(s.oidcOptions({ blobWebhookPublicKey: undefined }))
      const res = await presignRequest(id, `listening-sessions/${id}/a.wav`, payload())
      expect(res.status).toBe(200)
      const answer = await res.json()
      expect(answer.type).toBe('blob.generate-presigned-url')
      expect(Object.keys(answer.presignedUrlPayload).sort()).toEqual(['delegationToken', 'params', 'signature'])
      expect(answer.presignedUrlPayload.params['vercel-blob-callback-url']).toBeUndefined()
      expect(JSON.stringify(answer)).not.toMatch(/clientSigningToken/)
      use(s.oidcOptions({ blobCallbackUrl: route.url, blobWebhookPublicKey: 'not a key' }))
      const broken = await errorOf(await presignRequest(id, `listening-sessions/${id}/a.wav`, payload()))
      expect([broken.status, broken.code]).toEqual([503, 'config_invalid'])
      expect(broken.message).toContain('BLOB_WEBHOOK_PUBLIC_KEY')
      expect(broken.message).not.toContain('not a key')
    } finally {
      use(s.oidcOptions({ blobCallbackUrl: route.url }))
    }
  })

  it('storage refuses an upload over the granted size (the limit is in the signed token and the URL)', async () => {
    const id = await recording()
    try {
      use(s.oidcOptions({ blobCallbackUrl: route.url, maxUploadBytes: 100_000 }))
      const err = await presignedUpload(id, sineWav(5)).catch((e) => e) // 160 kB
      expect(err).toBeInstanceOf(Error)
      expect(String(err.message)).toMatch(/too large|exceeds|size/i)
      expect(s.blob.signedTokens.at(-1)!.body.maximumSizeInBytes).toBe(100_000)
      expect((await s.convex.getSession(id)).status).toBe('recording')
    } finally {
      use(s.oidcOptions({ blobCallbackUrl: route.url }))
    }
  })
})

describe('session-audio/client picks the grant by itself', () => {
  const call = (url: string, id: string, blob: Blob) =>
    uploadSessionAudio(id, blob, { durationMs: 5000, routeUrl: url, headers: { authorization: `Bearer ${alice}` } })

  it('over OIDC it uses uploadPresigned(); with a read-write token, upload() and a client token', async () => {
    const wav = sineWav(5)
    const id = await recording()
    const result = await call(audioRoute(id), id, new Blob([wav], { type: 'audio/wav' }))
    expect(result).toMatchObject({ sessionId: id, status: 'transcribing', sizeBytes: wav.length })
    expect(s.blob.puts.at(-1)!.kind).toBe('presigned')
    // Learnt for the deployment, not the session: the next session's upload asks for no client token.
    const next = await recording()
    const logged = route.log.length
    await call(audioRoute(next), next, new Blob([wav], { type: 'audio/wav' }))
    const refused = route.log.slice(logged).filter((l: { status: number }) => l.status === 400)
    expect(refused).toEqual([])

    // The same app code against a read-write deployment (a route of its own).
    const rwHandlers: Record<string, unknown> = {}
    const rw = await startRouteServer({ handlers: rwHandlers as never })
    try {
      Object.assign(rwHandlers, createAudioHandlers(s.options({ blobCallbackUrl: rw.url })))
      const other = await recording()
      const url = `${rw.url}/api/listening-sessions/${other}/audio`
      const done = await call(url, other, new Blob([wav], { type: 'audio/wav' }))
      expect(done).toMatchObject({ sessionId: other, status: 'transcribing' })
      expect(s.blob.puts.at(-1)!.kind).toBe('client-token')
    } finally {
      await rw.close()
    }
  })

  it("rejects with the route's own code when the presigned grant is refused", async () => {
    const bobs = await recording('user_bob')
    const err = await call(audioRoute(bobs), bobs, new Blob([sineWav(1)], { type: 'audio/wav' })).catch((e) => e)
    expect(err).toBeInstanceOf(SessionAudioUploadError)
    expect([err.status, err.code]).toEqual([404, 'session_not_found'])
  })

  it('presigned uploads work with a read-write token too (the signed token is asked for with it)', async () => {
    const rwHandlers: Record<string, unknown> = {}
    const rw = await startRouteServer({ handlers: rwHandlers as never })
    try {
      Object.assign(rwHandlers, createAudioHandlers(s.options({ blobCallbackUrl: rw.url })))
      const id = await recording()
      const stored = await uploadPresigned(`listening-sessions/${id}/recording.wav`, new Blob([sineWav(5)]), {
        access: 'private',
        handleUploadUrl: `${rw.url}/api/listening-sessions/${id}/audio`,
        headers: { authorization: `Bearer ${alice}` },
        clientPayload: payload(),
        contentType: 'audio/wav',
      })
      expect(s.blob.signedTokens.at(-1)!.kind).toBe('read-write')
      expect(await until(async () => (await s.convex.getSession(id)).audioUrl === stored.url, 5000)).toBe(true)
    } finally {
      await rw.close()
    }
  })
})
