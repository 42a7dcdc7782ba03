// POST end to end: real audio streamed through the addon into the Blob-compatible store, the real
// Convex functions moving the session, and every refusal leaving nothing half written.
import http from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startRouteServer } from '../stack/route-server.mjs'
import { sineWav } from '../stack/wav.mjs'
import { createAudioHandlers } from '../index.js'
import { errorOf, fixture, startStack, until, type Stack } from './helpers'

let s: Stack
let alice: string
const wav10 = sineWav(10)

beforeAll(async () => {
  s = await startStack()
  alice = await s.clerk.sessionToken({ sub: 'user_alice' })
})
afterAll(() => s.close())

const recording = (userId = 'user_alice') => s.session(userId, null, { status: 'recording' })
const meta = (type: string, extra: Record<string, string> = {}) => ({
  'x-duration-ms': '10000',
  'x-content-type': type,
  ...extra,
})

async function expectUntouched(sessionId: string, blobsBefore: string[]) {
  const doc = await s.convex.getSession(sessionId)
  expect(doc.status).toBe('recording')
  expect(doc.audioUrl).toBeUndefined()
  expect(s.blob.list()).toEqual(blobsBefore)
}

describe('a successful upload', () => {
  // (name, bytes, declared type, stored type, declared ms, measured ms)
  const cases: [string, Buffer, string, string, number, number][] = [
    ['a generated 10 s WAV', wav10, 'audio/wav', 'audio/wav', 10_000, 10_000],
    [
      'a WebM/Opus recording',
      fixture('tone-5s.webm'),
      'audio/webm;codecs=opus',
      'audio/webm;codecs=opus',
      5_000,
      5_013, // the Opus packets present, less CodecDelay (the last block's DiscardPadding is not taken off)
    ],
    ['an M4A with an aliased type', fixture('tone-5s.m4a'), 'audio/x-m4a', 'audio/mp4', 5_200, 5_000],
  ]
  for (const [name, audio, declared, normalised, declaredMs, measuredMs] of cases) {
    it(`${name} lands byte-identical, the session becomes transcribing, and GET streams it back`, async () => {
      const id = await recording()
      const res = await s.post(id, audio, {
        token: alice,
        headers: meta(declared, { 'content-length': String(audio.length), 'x-duration-ms': String(declaredMs) }),
      })
      expect(res.status).toBe(201)
      expect(res.headers.get('cache-control')).toBe('no-store')
      const body = await res.json()
      expect(body).toMatchObject({
        sessionId: id,
        status: 'transcribing',
        contentType: normalised,
        sizeBytes: audio.length,
        durationMs: measuredMs, // measured from the container, not the declaration
        durationSource: 'measured',
      })
      expect(body.pathname).toMatch(new RegExp(`^listening-sessions/${id}/[0-9a-f]{16}-[A-Za-z0-9_-]+\\.\\w+$`))
      expect(s.blob.read(body.pathname).equals(audio)).toBe(true)
      expect(s.blob.meta.get(body.pathname)).toMatchObject({ access: 'private', contentType: normalised })
      const put = s.blob.puts.at(-1)!
      expect(put.headers['x-api-version']).toBe('12')
      expect(put.headers['x-vercel-blob-store-id']).toBe('localstore')
      const doc = await s.convex.getSession(id)
      expect(doc).toMatchObject({
        status: 'transcribing',
        audioUrl: body.audioUrl,
        audioPathname: body.pathname,
        audioSizeBytes: audio.length,
        durationMs: measuredMs,
      })
      // And back out through GET: the private blob is read with the token, ranges work.
      const full = await s.get(id, { token: alice })
      expect(full.status).toBe(200)
      expect(full.headers.get('content-type')).toBe(normalised)
      expect(Buffer.from(await full.arrayBuffer()).equals(audio)).toBe(true)
      const part = await s.get(id, { token: alice, headers: { range: 'bytes=4-11' } })
      expect(part.status).toBe(206)
      expect(part.headers.get('content-range')).toBe(`bytes 4-11/${audio.length}`)
      expect(Buffer.from(await part.arrayBuffer()).equals(audio.subarray(4, 12))).toBe(true)
    })
  }

  it('a GET answered from the lookup cache just before the upload sees the audio right after it', async () => {
    const id = await recording()
    const handlers = s.handlers({ lookupTtlMs: 60_000 })
    const before = await errorOf(await s.get(id, { token: alice, handlers }))
    expect(before.code).toBe('audio_not_found') // now cached for a minute…
    const up = await s.post(id, wav10, { token: alice, headers: meta('audio/wav'), handlers })
    expect(up.status).toBe(201)
    const after = await s.get(id, { token: alice, handlers }) // …but the upload invalidated it
    expect(after.status).toBe(200)
    expect(Buffer.from(await after.arrayBuffer()).equals(wav10)).toBe(true)
  })

  it('through a Next-style server with a real Content-Length, streamed in small chunks', async () => {
    const app = await startRouteServer({ handlers: createAudioHandlers(s.options()) })
    try {
      const id = await recording()
      const body = new ReadableStream({
        start(c) {
          for (let i = 0; i < wav10.length; i += 4096) c.enqueue(wav10.subarray(i, i + 4096))
          c.close()
        },
      })
      const res = await fetch(`${app.url}/api/listening-sessions/${id}/audio`, {
        method: 'POST',
        headers: { authorization: `Bearer ${alice}`, ...meta('audio/wav') },
        body,
        duplex: 'half',
      } as RequestInit)
      expect(res.status).toBe(201)
      const { pathname } = await res.json()
      expect(s.blob.read(pathname).equals(wav10)).toBe(true)
    } finally {
      await app.close()
    }
  })
})

describe('refusals before anything is stored', () => {
  const headerCases: [string, Record<string, string>, number, string][] = [
    ['no x-duration-ms', { 'x-content-type': 'audio/wav' }, 400, 'missing_duration'],
    ['x-duration-ms zero', meta('audio/wav', { 'x-duration-ms': '0' }), 400, 'invalid_duration'],
    ['x-duration-ms not a number', meta('audio/wav', { 'x-duration-ms': '10s' }), 400, 'invalid_duration'],
    [
      'x-duration-ms above 4 h',
      meta('audio/wav', { 'x-duration-ms': String(4 * 3600 * 1000 + 1) }),
      400,
      'invalid_duration',
    ],
    ['no x-content-type', { 'x-duration-ms': '10000' }, 400, 'missing_content_type'],
    ['malformed x-content-type', meta('audio'), 400, 'invalid_content_type'],
    ['a non-audio type', meta('text/html'), 415, 'unsupported_media_type'],
    ['an audio type outside the list', meta('audio/midi'), 415, 'unsupported_media_type'],
    [
      'a declared Content-Length over 100 MiB',
      meta('audio/wav', { 'content-length': String(100 * 1024 * 1024 + 1) }),
      413,
      'payload_too_large',
    ],
  ]
  for (const [name, headers, status, code] of headerCases) {
    it(`${name} → ${status} ${code}`, async () => {
      const id = await recording()
      const before = s.blob.list()
      const putsBefore = s.blob.calls.put
      const e = await errorOf(await s.post(id, wav10, { token: alice, headers }))
      expect([e.status, e.code]).toEqual([status, code])
      expect(s.blob.calls.put).toBe(putsBefore)
      await expectUntouched(id, before)
    })
  }

  it('a type the deployment narrowed away → 415', async () => {
    const id = await recording()
    const e = await errorOf(
      await s.post(id, wav10, {
        token: alice,
        headers: meta('audio/wav'),
        handlers: s.handlers({ allowedTypes: ['audio/webm'] }),
      }),
    )
    expect([e.status, e.code]).toEqual([415, 'unsupported_media_type'])
  })

  it('bytes that are not the declared container → 415 content_mismatch', async () => {
    const id = await recording()
    const before = s.blob.list()
    const webm = fixture('tone-5s.webm')
    for (const [body, type] of [
      [Buffer.from('<html><script>alert(1)</script></html>'), 'audio/wav'],
      [webm, 'audio/mpeg'],
      [wav10, 'audio/webm'],
    ] as const) {
      const e = await errorOf(await s.post(id, body, { token: alice, headers: meta(type) }))
      expect([e.status, e.code]).toEqual([415, 'content_mismatch'])
    }
    await expectUntouched(id, before)
  })

  it('an empty body → 400 empty_body', async () => {
    const id = await recording()
    const e = await errorOf(await s.post(id, new Uint8Array(0), { token: alice, headers: meta('audio/wav') }))
    expect([e.status, e.code]).toEqual([400, 'empty_body'])
  })

  it('no token → 401; a foreign session → 404; a missing session → 404', async () => {
    const id = await recording('user_bob')
    const before = s.blob.list()
    const noToken = await errorOf(await s.post(id, wav10, { headers: meta('audio/wav') }))
    expect([noToken.status, noToken.code]).toEqual([401, 'token_missing'])
    const foreign = await errorOf(await s.post(id, wav10, { token: alice, headers: meta('audio/wav') }))
    expect([foreign.status, foreign.code]).toEqual([404, 'session_not_found'])
    const missing = await errorOf(await s.post('k_nope', wav10, { token: alice, headers: meta('audio/wav') }))
    expect([missing.status, missing.code]).toEqual([404, 'session_not_found'])
    await expectUntouched(id, before)
  })

  it('a session that is not recording → 409 naming its state', async () => {
    const id = await s.session('user_alice', null, { status: 'ready' })
    const e = await errorOf(await s.post(id, wav10, { token: alice, headers: meta('audio/wav') }))
    expect([e.status, e.code]).toEqual([409, 'invalid_session_state'])
    expect(e.message).toMatch(/ready/)
  })

  it('entitlements: no recording → 403; over the user duration → 403; over the user size → 413 with the limit', async () => {
    const carol = await s.clerk.sessionToken({ sub: 'user_carol' })
    const id = await recording('user_carol')
    const before = s.blob.list()
    await s.convex.setEntitlement('user_carol', { canRecord: false })
    const denied = await errorOf(await s.post(id, wav10, { token: carol, headers: meta('audio/wav') }))
    expect([denied.status, denied.code]).toEqual([403, 'entitlement_denied'])
    await s.convex.setEntitlement('user_carol', { canRecord: true, maxRecordingMs: 5000 })
    const long = await errorOf(await s.post(id, wav10, { token: carol, headers: meta('audio/wav') }))
    expect([long.status, long.code]).toEqual([403, 'duration_limit_exceeded'])
    expect(long.message).toMatch(/5000 ms/)
    await s.convex.setEntitlement('user_carol', { canRecord: true, maxUploadBytes: 1000 })
    const big = await errorOf(
      await s.post(id, wav10, { token: carol, headers: meta('audio/wav', { 'content-length': String(wav10.length) }) }),
    )
    expect([big.status, big.code]).toEqual([413, 'payload_too_large'])
    expect(big.message).toMatch(/1000 bytes/)
    // Undeclared length: cut off the moment it passes the user's limit.
    const cut = await errorOf(await s.post(id, wav10, { token: carol, headers: meta('audio/wav') }))
    expect([cut.status, cut.code]).toEqual([413, 'payload_too_large'])
    await expectUntouched(id, before)
  })

  it('a body without Content-Length is cut off with 413 as soon as it passes the limit; nothing is stored', async () => {
    const id = await recording()
    const before = s.blob.list()
    let produced = 0
    const endless = new ReadableStream({
      pull(c) {
        const chunk = produced === 0 ? wav10.subarray(0, 65536) : new Uint8Array(65536)
        produced += chunk.length
        c.enqueue(chunk)
      },
    })
    const e = await errorOf(
      await s.post(id, endless, {
        token: alice,
        headers: meta('audio/wav'),
        handlers: s.handlers({ maxUploadBytes: 1024 * 1024 }),
      }),
    )
    expect([e.status, e.code]).toEqual([413, 'payload_too_large'])
    // It stopped reading right after the limit, not at the end of an endless body.
    expect(produced).toBeLessThan(1024 * 1024 + 64 * 65536)
    await new Promise((r) => setTimeout(r, 50))
    await expectUntouched(id, before)
  })

  it('a body shorter than its Content-Length (a truncating middleware) → 400 incomplete_body, nothing stored', async () => {
    const id = await recording()
    const before = s.blob.list()
    const e = await errorOf(
      await s.post(id, wav10.subarray(0, 100_000), {
        token: alice,
        headers: meta('audio/wav', { 'content-length': String(wav10.length) }),
      }),
    )
    expect([e.status, e.code]).toEqual([400, 'incomplete_body'])
    await new Promise((r) => setTimeout(r, 50))
    await expectUntouched(id, before)
  })

  it('missing BLOB_READ_WRITE_TOKEN → 503 config_missing; a malformed one → 503 config_invalid', async () => {
    const id = await recording()
    const missing = await errorOf(
      await s.post(id, wav10, {
        token: alice,
        headers: meta('audio/wav'),
        handlers: s.handlers({ blobReadWriteToken: undefined }),
      }),
    )
    expect([missing.status, missing.code]).toEqual([503, 'config_missing'])
    expect(missing.message).toMatch(/BLOB_READ_WRITE_TOKEN/)
    const bad = await errorOf(
      await s.post(id, wav10, {
        token: alice,
        headers: meta('audio/wav'),
        handlers: s.handlers({ blobReadWriteToken: 'nope' }),
      }),
    )
    expect([bad.status, bad.code]).toEqual([503, 'config_invalid'])
  })
})

describe('failures after the checks leave nothing half written', () => {
  it('Blob answering 5xx before streaming → 502 storage_failed, nothing stored, session unchanged', async () => {
    const id = await recording()
    const before = s.blob.list()
    s.blob.state.fail = { status: 503, code: 'service_unavailable', sticky: true }
    try {
      const e = await errorOf(await s.post(id, wav10, { token: alice, headers: meta('audio/wav') }))
      expect([e.status, e.code]).toEqual([502, 'storage_failed'])
    } finally {
      s.blob.state.fail = null
    }
    await expectUntouched(id, before)
  })

  it('a Blob 5xx after the body started is not retried: the body cannot be replayed', async () => {
    const id = await recording()
    const putsBefore = s.blob.calls.put
    s.blob.state.fail = { status: 500, code: 'internal_server_error' } // retryable for the SDK
    const e = await errorOf(await s.post(id, wav10, { token: alice, headers: meta('audio/wav') }))
    expect([e.status, e.code]).toEqual([502, 'storage_failed'])
    expect(s.blob.calls.put - putsBefore).toBe(1)
  })

  it('Blob resetting the connection mid-body → 502 storage_failed, nothing stored', async () => {
    const id = await recording()
    const before = s.blob.list()
    s.blob.state.resetAfterBytes = 50_000
    const e = await errorOf(await s.post(id, wav10, { token: alice, headers: meta('audio/wav') }))
    expect([e.status, e.code]).toEqual([502, 'storage_failed'])
    await expectUntouched(id, before)
  })

  it('a client that aborts mid-body stores nothing and leaves the session recording', async () => {
    const app = await startRouteServer({ handlers: createAudioHandlers(s.options()) })
    try {
      const id = await recording()
      const before = s.blob.list()
      const putsBefore = s.blob.puts.length
      const req = http.request(`${app.url}/api/listening-sessions/${id}/audio`, {
        method: 'POST',
        headers: { authorization: `Bearer ${alice}`, ...meta('audio/wav'), 'content-length': String(wav10.length) },
      })
      req.on('error', () => {})
      req.write(wav10.subarray(0, 120_000))
      // Wait until the upload reached storage, then vanish.
      const deadline = Date.now() + 5000
      while (!(s.blob.puts.length > putsBefore && s.blob.puts.at(-1)!.bytes > 0) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 10))
      }
      req.destroy()
      await new Promise((r) => setTimeout(r, 300))
      expect(s.blob.puts.at(-1)!.stored).toBe(false)
      await expectUntouched(id, before)
    } finally {
      await app.close()
    }
  })

  it('a failing attach mutation keeps the stored blob (an outage is no reason to lose audio) → 503 convex_unavailable, not final', async () => {
    const id = await recording()
    const before = s.blob.list()
    s.convex.state.fail = { status: 500, kind: 'mutation' }
    // A handler of its own: after this outage it fails fast for a few seconds, by design.
    const handlers = s.handlers()
    const res = await s.post(id, wav10, { token: alice, headers: meta('audio/wav'), handlers })
    expect(res.headers.get('retry-after')).toBe('5')
    const e = await errorOf(res)
    expect([e.status, e.code, e.final]).toEqual([503, 'convex_unavailable', false])
    expect(e.message).toMatch(/The upload is kept/)
    expect(s.blob.puts.at(-1)!.stored).toBe(true)
    expect(s.blob.list().filter((p) => !before.includes(p))).toEqual([s.blob.puts.at(-1)!.pathname])
    expect((await s.convex.getSession(id)).status).toBe('recording')
  })

  describe('an attach whose outcome is unknown is decided by re-reading the session', () => {
    for (const [how, lost, ttl] of [
      ['a 500', { status: 500 }, 29],
      ['a reset connection', { status: 500, reset: true }, 30],
    ] as const) {
      it(`the mutation applied but its answer was lost (${how}) → 201, the blob kept and attached`, async () => {
        const id = await recording()
        const handlers = s.handlers() // its own breaker: this failure opens it
        s.convex.state.fail = { kind: 'mutation', afterRun: true, ...lost }
        const res = await s.post(id, wav10, { token: alice, headers: meta('audio/wav'), handlers })
        expect(res.status).toBe(201)
        const body = await res.json()
        const doc = await s.convex.getSession(id)
        expect([doc.status, doc.audioUrl]).toEqual(['transcribing', body.audioUrl])
        expect(s.blob.list()).toContain(body.pathname)
      })
    }

    it('the answer was lost and another upload won meanwhile → 409, our blob deleted', async () => {
      const id = await recording()
      const before = s.blob.list()
      const handlers = s.handlers()
      s.convex.state.override['listeningSessions:attachAudio'] = async (ctx: any, _who: unknown, args: any) => {
        await ctx.db.patch(args.sessionId, { status: 'transcribing', audioUrl: 'https://other.example/x.wav' })
      }
      s.convex.state.fail = { kind: 'mutation', afterRun: true, status: 503 }
      try {
        const e = await errorOf(await s.post(id, wav10, { token: alice, headers: meta('audio/wav'), handlers }))
        expect([e.status, e.code]).toEqual([409, 'invalid_session_state'])
        expect(s.blob.list()).toEqual(before)
      } finally {
        delete s.convex.state.override['listeningSessions:attachAudio']
      }
    })

    it('a refusal of a shape we do not know, session still recording → 503 convex_error, blob kept', async () => {
      const id = await recording()
      const before = s.blob.list()
      s.convex.state.fail = { functionError: 'something new went wrong', kind: 'mutation' }
      const e = await errorOf(await s.post(id, wav10, { token: alice, headers: meta('audio/wav') }))
      expect([e.status, e.code, e.final]).toEqual([503, 'convex_error', false])
      expect(s.blob.list().filter((p) => !before.includes(p))).toHaveLength(1)
      expect((await s.convex.getSession(id)).status).toBe('recording')
    })

    it('the answer was lost and the session cannot be re-read → 503, the blob kept for the sweep', async () => {
      const id = await recording()
      const before = s.blob.list()
      const handlers = s.handlers()
      // The mutation's answer is lost, and from then on Convex answers no query either.
      s.convex.state.override['listeningSessions:attachAudio'] = async () => {
        s.convex.state.fail = { status: 503, sticky: true, kind: 'query' }
      }
      s.convex.state.fail = { kind: 'mutation', afterRun: true, status: 503 }
      try {
        const e = await errorOf(await s.post(id, wav10, { token: alice, headers: meta('audio/wav'), handlers }))
        expect([e.status, e.code]).toEqual([503, 'convex_unavailable'])
        // Not deleted: for all we know it is attached. An unattached one is the sweep's to remove.
        expect(s.blob.list().filter((p) => !before.includes(p))).toHaveLength(1)
        expect((await s.convex.getSession(id)).status).toBe('recording')
      } finally {
        s.convex.state.fail = null
        delete s.convex.state.override['listeningSessions:attachAudio']
      }
    })
  })

  it('two concurrent uploads to one session → exactly one 201, the other 409, one blob left', async () => {
    const id = await recording()
    const before = s.blob.list()
    const [a, b] = await Promise.all([
      s.post(id, wav10, { token: alice, headers: meta('audio/wav') }),
      s.post(id, wav10, { token: alice, headers: meta('audio/wav') }),
    ])
    const statuses = [a.status, b.status].sort()
    expect(statuses).toEqual([201, 409])
    const loser = a.status === 409 ? a : b
    expect((await errorOf(loser)).code).toBe('invalid_session_state')
    const winner = await (a.status === 201 ? a : b).json()
    const added = s.blob.list().filter((p) => !before.includes(p))
    expect(added).toEqual([winner.pathname])
    expect((await s.convex.getSession(id)).audioPathname).toBe(winner.pathname)
  })
})

describe('the duration is measured, not believed', () => {
  it('declaring 1 s and sending 10 s is 400 duration_mismatch: nothing stays stored', async () => {
    const id = await recording()
    const before = s.blob.list()
    const res = await s.post(id, wav10, { token: alice, headers: meta('audio/wav', { 'x-duration-ms': '1000' }) })
    const e = await errorOf(res)
    expect([e.status, e.code]).toEqual([400, 'duration_mismatch'])
    expect(e.message).toMatch(/1000 ms.*10000 ms/)
    await expectUntouched(id, before)
  })

  it("the user's limit applies to the measured length, not the declared one", async () => {
    await s.convex.setEntitlement('user_tara', { canRecord: true, maxRecordingMs: 9_500 })
    const token = await s.clerk.sessionToken({ sub: 'user_tara' })
    const id = await recording('user_tara')
    const before = s.blob.list()
    // 9.2 s declared: under the limit, and within 1 s of the 10 s the bytes hold.
    const res = await s.post(id, wav10, { token, headers: meta('audio/wav', { 'x-duration-ms': '9200' }) })
    const e = await errorOf(res)
    expect([e.status, e.code]).toEqual([403, 'duration_limit_exceeded'])
    await expectUntouched(id, before)
  })

  /** An MP3 a sniffer accepts (an ID3v2 tag) with no audio frame after it: nothing to measure. */
  const frameless = () =>
    Buffer.concat([Buffer.from('ID3\x04\x00\x00\x00\x00\x00\x10', 'latin1'), Buffer.alloc(16 + 4096, 0x20)])

  it('audio whose duration cannot be measured is 400 duration_unmeasurable by default; nothing is stored', async () => {
    const id = await recording()
    const before = s.blob.list()
    const res = await s.post(id, frameless(), {
      token: alice,
      headers: meta('audio/mpeg', { 'x-duration-ms': '4321' }),
    })
    const e = await errorOf(res)
    expect([e.status, e.code]).toEqual([400, 'duration_unmeasurable'])
    expect(e.message).toMatch(/cannot be measured/)
    expect(s.blob.list()).toEqual(before)
    expect((await s.convex.getSession(id)).status).toBe('recording')
  })

  it('with acceptDeclaredDuration the declaration stands for such audio, and the answer and record say so', async () => {
    const id = await recording()
    const records: { sessionId?: string; durationSource?: string }[] = []
    const handlers = s.handlers({ onRequest: (r) => records.push(r), acceptDeclaredDuration: true })
    const res = await s.post(id, frameless(), {
      token: alice,
      headers: meta('audio/mpeg', { 'x-duration-ms': '4321' }),
      handlers,
    })
    expect(res.status).toBe(201)
    expect(await res.json()).toMatchObject({ durationMs: 4321, durationSource: 'declared' })
    expect((await s.convex.getSession(id)).durationMs).toBe(4321)
    // The request record (onRequest, and the log line) says so too; a measured upload says measured.
    const other = await recording()
    expect((await s.post(other, wav10, { token: alice, headers: meta('audio/wav'), handlers })).status).toBe(201)
    expect(await until(() => records.length >= 2)).toBe(true)
    expect(records.map((r) => [r.sessionId, r.durationSource])).toEqual([
      [id, 'declared'],
      [other, 'measured'],
    ])
  })
})

describe('nothing waits forever, nothing piles up', () => {
  /** POST over real HTTP, send `sent` bytes of the body, then go quiet (the socket stays open). */
  async function stallingUpload(opts: ReturnType<Stack['options']>, id: string, sent: number) {
    const app = await startRouteServer({ handlers: createAudioHandlers(opts) })
    const req = http.request(`${app.url}/api/listening-sessions/${id}/audio`, {
      method: 'POST',
      headers: { authorization: `Bearer ${alice}`, ...meta('audio/wav'), 'content-length': String(wav10.length) },
    })
    req.on('error', () => {})
    const answered = new Promise<{ status: number; body: string; ms: number }>((resolve) => {
      const t0 = Date.now()
      req.on('response', async (res) => {
        let body = ''
        for await (const c of res) body += c
        resolve({ status: res.statusCode!, body, ms: Date.now() - t0 })
      })
    })
    req.write(wav10.subarray(0, sent))
    try {
      return await answered
    } finally {
      req.destroy()
      await app.close()
    }
  }

  for (const [when, sent] of [
    ['before the head is complete', 4],
    ['mid-body', 120_000],
  ] as const) {
    it(`a body that stops arriving ${when} is 408 upload_timeout after the idle timeout, nothing stored`, async () => {
      const id = await recording()
      const before = s.blob.list()
      const opts = s.options({ uploadIdleTimeoutMs: 300 })
      const res = await stallingUpload(opts, id, sent)
      expect([res.status, JSON.parse(res.body).error.code]).toEqual([408, 'upload_timeout'])
      expect(res.ms).toBeGreaterThanOrEqual(250)
      expect(res.ms).toBeLessThan(5000)
      await expectUntouched(id, before)
    })
  }

  it('a body that is slow but keeps arriving is not abandoned', async () => {
    const id = await recording()
    const handlers = s.handlers({ uploadIdleTimeoutMs: 300 })
    let i = 0
    const body = new ReadableStream({
      async pull(c) {
        if (i >= wav10.length) return c.close()
        await new Promise((r) => setTimeout(r, 100)) // each gap a third of the idle timeout
        c.enqueue(new Uint8Array(wav10.subarray(i, i + 40_000)))
        i += 40_000
      },
    })
    const res = await s.post(id, body, { token: alice, headers: meta('audio/wav'), handlers })
    expect(res.status).toBe(201)
  })

  it('a body that trickles inside the idle timeout is still 408 upload_timeout at uploadTimeoutMs, nothing stored', async () => {
    const id = await recording()
    const before = s.blob.list()
    const handlers = s.handlers({ uploadIdleTimeoutMs: 1000, uploadTimeoutMs: 1500 })
    let i = 0
    let stopped = false
    const body = new ReadableStream({
      async pull(c) {
        if (i >= wav10.length) return c.close()
        await new Promise((r) => setTimeout(r, 200)) // never idle: a chunk every fifth of the idle timeout
        c.enqueue(new Uint8Array(wav10.subarray(i, i + 1000)))
        i += 1000
      },
      cancel() {
        stopped = true
      },
    })
    const t0 = Date.now()
    const e = await errorOf(await s.post(id, body, { token: alice, headers: meta('audio/wav'), handlers }))
    expect([e.status, e.code]).toEqual([408, 'upload_timeout'])
    expect(e.message).toMatch(/took longer than 1\.5 s/)
    expect(Date.now() - t0).toBeLessThan(5000)
    expect(i).toBeLessThan(wav10.length) // cut off, not read to the end
    expect(await until(() => stopped, 2000)).toBe(true)
    await expectUntouched(id, before)
  })

  it('a Blob store that takes the body and never answers → 502 storage_failed, nothing stored', async () => {
    const id = await recording()
    const before = s.blob.list()
    const handlers = s.handlers({ uploadIdleTimeoutMs: 300 })
    s.blob.state.misbehave = { kind: 'put', mode: 'hang' }
    const t0 = Date.now()
    const e = await errorOf(await s.post(id, wav10, { token: alice, headers: meta('audio/wav'), handlers }))
    expect([e.status, e.code]).toEqual([502, 'storage_failed'])
    expect(Date.now() - t0).toBeLessThan(5000)
    await expectUntouched(id, before)
  })

  it('a Blob error answer of 8 MiB is read no further than 64 KiB → 502 storage_failed', async () => {
    const id = await recording()
    const before = s.blob.list()
    s.blob.state.misbehave = { kind: 'put', mode: 'huge' }
    const e = await errorOf(await s.post(id, wav10, { token: alice, headers: meta('audio/wav') }))
    expect([e.status, e.code]).toEqual([502, 'storage_failed'])
    await expectUntouched(id, before)
  })

  it('a delete that never answers after a refused upload is given up in bounded time', async () => {
    const id = await recording()
    const handlers = s.handlers({ upstreamTimeoutMs: 300 })
    s.blob.state.misbehave = { kind: 'delete', mode: 'hang', sticky: true }
    const deletes = s.blob.calls.delete
    try {
      const t0 = Date.now()
      // 1 s declared, 10 s in the bytes: refused for what the upload is, so it is deleted.
      const headers = meta('audio/wav', { 'x-duration-ms': '1000' })
      const e = await errorOf(await s.post(id, wav10, { token: alice, headers, handlers }))
      expect([e.status, e.code]).toEqual([400, 'duration_mismatch'])
      expect(Date.now() - t0).toBeLessThan(8000)
      expect(s.blob.calls.delete - deletes).toBe(3) // the SDK's attempts, each bounded
    } finally {
      s.blob.state.misbehave = null
    }
  })

  it('before the checks pass, at most one 64 KiB piece of the body is held, whatever the chunk size', async () => {
    // A session in the wrong state: refused after identity and the Convex lookup, while the
    // client offers 1 MiB chunks as fast as they are pulled.
    const id = await s.session('user_alice', null, { status: 'ready' })
    let pulled = 0
    const body = new ReadableStream({
      pull(c) {
        pulled += 1 << 20
        c.enqueue(new Uint8Array(1 << 20))
        if (pulled >= 64 << 20) c.close()
      },
    })
    const e = await errorOf(await s.post(id, body, { token: alice, headers: meta('audio/wav') }))
    expect([e.status, e.code]).toEqual([409, 'invalid_session_state'])
    // The chunk being written, and the one the stream queued ahead; then, after the refusal, what
    // index.js drains (read and thrown away, so the client's connection stays usable): at most
    // 1 MiB, here one chunk, and the one queued ahead of it. Never more.
    expect(pulled).toBeLessThanOrEqual(3 << 20)
  })
})
