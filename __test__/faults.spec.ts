// Fault injection: no dependency's failure may delete a user's audio. Each case uploads a real
// recording straight to the Blob-compatible store (the official `upload()`), breaks Clerk, Convex
// or Blob on one call of the completion, and checks the invariant: the blob is still stored and
// the answer is a retryable refusal that names the dependency (`final: false`); once the fault is
// gone, the same completion sent again attaches it. Only refusals about the recording itself
// delete it (README, Reliability: the one delete rule, table-tested in crates/core/src/upload/attach.rs).
import crypto from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { upload } from '@vercel/blob/client'
import { startRouteServer, VERCEL_MAX_BODY_BYTES } from '../stack/route-server.mjs'
import { sineWav } from '../stack/wav.mjs'
import { createAudioHandlers, type AudioOptions } from '../index.js'
import { errorOf, startStack, until, type Stack } from './helpers'

let s: Stack
let route: Awaited<ReturnType<typeof startRouteServer>>
let alice: string
const handlers: Record<string, unknown> = {}

beforeAll(async () => {
  s = await startStack()
  alice = await s.clerk.sessionToken({ sub: 'user_alice' })
  route = await startRouteServer({ handlers: handlers as never, maxBodyBytes: VERCEL_MAX_BODY_BYTES })
  use()
  process.env.VERCEL_BLOB_API_URL = s.blob.apiUrl
  process.env.VERCEL_BLOB_RETRIES = '0'
})
afterAll(async () => {
  delete process.env.VERCEL_BLOB_API_URL
  delete process.env.VERCEL_BLOB_RETRIES
  await route.close()
  await s.close()
})

/** Fresh handlers (empty caches, a closed breaker) behind the route, with `extra` options. */
const use = (extra: AudioOptions = {}) =>
  Object.assign(handlers, createAudioHandlers(s.options({ blobCallbackUrl: route.url, ...extra })))
const recording = () => s.session('user_alice', null, { status: 'recording' })
const audioRoute = (id: string) => `${route.url}/api/listening-sessions/${id}/audio`

function clientUpload(id: string, seconds = 3) {
  return upload(`listening-sessions/${id}/take.wav`, new Blob([sineWav(seconds)], { type: 'audio/wav' }), {
    access: 'private',
    handleUploadUrl: audioRoute(id),
    headers: { authorization: `Bearer ${alice}` },
    clientPayload: JSON.stringify({ durationMs: seconds * 1000, contentType: 'audio/wav' }),
    contentType: 'audio/wav',
  })
}

function complete(id: string, url: string, durationMs = 3000) {
  return fetch(audioRoute(id), {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${alice}` },
    body: JSON.stringify({ type: 'session-audio.complete-upload', payload: { url, durationMs } }),
  })
}

/** Upload with webhooks held (the browser's completion is the one under test). */
async function stored(id: string) {
  s.blob.state.holdWebhooks = true
  return clientUpload(id)
}

function clearFaults() {
  s.convex.state.fail = null
  s.clerk.state.fail = null
  s.blob.state.fail = null
  s.blob.state.misbehave = null
  s.convex.state.override = {}
}

async function expectKept(id: string, pathname: string, res: Response, code: string) {
  const e = await errorOf(res)
  expect([e.status, e.code, e.final], e.message).toEqual([503, code, false])
  expect(res.headers.get('retry-after')).toBeTruthy()
  expect(s.blob.list()).toContain(pathname)
  return e
}

async function expectAttached(id: string, url: string) {
  const doc = await s.convex.getSession(id)
  expect([doc.status, doc.audioUrl]).toEqual(['transcribing', url])
}

describe('a client-upload completion keeps the recording through every fault of its dependencies', () => {
  // (what fails, how, the code the 503 names, where the session is left)
  const faults: [string, () => void, string][] = [
    ['Convex 503 on the attach', () => (s.convex.state.fail = { status: 503, kind: 'mutation' }), 'convex_unavailable'],
    [
      'Convex 401 on the attach',
      () => (s.convex.state.fail = { status: 401, kind: 'mutation' }),
      'convex_auth_rejected',
    ],
    [
      'the attach throwing an error not about the upload',
      () => (s.convex.state.fail = { functionError: 'database overloaded', kind: 'mutation' }),
      'convex_error',
    ],
    [
      'Convex 503 on the session lookup',
      () => (s.convex.state.fail = { status: 503, kind: 'query', sticky: true }),
      'convex_unavailable',
    ],
    [
      'Clerk 503 on the template token',
      () => (s.clerk.state.fail = { status: 503, kind: 'tokens', sticky: true }),
      'auth_provider_unavailable',
    ],
    [
      'Blob 503 on head',
      () => (s.blob.state.fail = { status: 503, code: 'service_unavailable', kind: 'head', sticky: true }),
      'storage_failed',
    ],
    [
      "Blob's head answering 404 store_not_found (the deployment's problem, not a missing upload)",
      () => (s.blob.state.fail = { status: 404, code: 'store_not_found', kind: 'head', sticky: true }),
      'blob_access_denied',
    ],
    [
      "Blob's head answering for another blob (another session's): neither attached nor deleted",
      () =>
        (s.blob.state.misbehave = {
          kind: 'head',
          mode: 'answer',
          sticky: true,
          answer: {
            url: `${s.blob.url}/listening-sessions/someone-else/take.webm`,
            downloadUrl: `${s.blob.url}/listening-sessions/someone-else/take.webm?download=1`,
            pathname: 'listening-sessions/someone-else/take.webm',
            size: 1234,
            contentType: 'audio/webm',
            uploadedAt: new Date().toISOString(),
          },
        }),
      'storage_failed',
    ],
  ]
  for (const [what, inject, code] of faults) {
    it(`${what} → 503 ${code}, blob kept, session recording; retried after recovery → 201`, async () => {
      use() // the upload on an instance of its own (an earlier case may have left one failing fast)
      const id = await recording()
      const blob = await stored(id)
      use() // nothing cached: the completion makes every call it can
      inject()
      let res: Response
      try {
        res = await complete(id, blob.url)
      } finally {
        clearFaults()
      }
      await expectKept(id, blob.pathname, res, code)
      expect((await s.convex.getSession(id)).status).toBe('recording')
      use() // a new instance after the outage (no breaker window to wait out)
      const again = await complete(id, blob.url)
      expect(again.status).toBe(201)
      await expectAttached(id, blob.url)
    })
  }

  it('an attach applied late (answer lost, no re-read possible) → 503 kept; the retry answers 200 from the record', async () => {
    use()
    const id = await recording()
    const blob = await stored(id)
    // The attach applies, its answer is lost, and Convex answers no query after it.
    s.convex.state.override['listeningSessions:attachAudio'] = async (ctx: any, _who: unknown, args: any) => {
      await ctx.db.patch(args.sessionId, {
        status: 'transcribing',
        audioUrl: args.audioUrl,
        audioPathname: args.pathname,
        audioContentType: args.contentType,
        audioSizeBytes: args.sizeBytes,
        durationMs: args.durationMs,
      })
      s.convex.state.fail = { status: 503, sticky: true, kind: 'query' }
    }
    s.convex.state.fail = { kind: 'mutation', afterRun: true, status: 503 }
    let res: Response
    try {
      res = await complete(id, blob.url)
    } finally {
      clearFaults()
    }
    await expectKept(id, blob.pathname, res, 'convex_unavailable')
    use() // Convex is back (a new instance: no breaker window to wait out)
    const again = await complete(id, blob.url)
    expect(again.status).toBe(200)
    expect(await again.json()).toMatchObject({ status: 'transcribing', audioUrl: blob.url })
    expect(s.blob.list()).toContain(blob.pathname)
  })

  it('an attach that outlives serviceTimeoutMs and applies later: 503 convex_unavailable, kept; the retry answers 200', async () => {
    const id = await recording()
    const blob = await stored(id)
    use({ serviceTimeoutMs: 800 })
    // The attach runs (and applies) only after the route gave up waiting for it.
    s.convex.state.delayRunMs = { mutation: 2000 }
    const applied = async () => (await s.convex.getSession(id)).status === 'transcribing'
    let res: Response
    try {
      res = await complete(id, blob.url)
      expect(await applied()).toBe(false) // answered before the late attach landed
      expect(await until(applied, 5000)).toBe(true)
    } finally {
      s.convex.state.delayRunMs = {}
    }
    await expectKept(id, blob.pathname, res, 'convex_unavailable')
    use() // the timeout opened this instance's breaker: a new one, as after its window
    const again = await complete(id, blob.url)
    expect(again.status).toBe(200)
    await expectAttached(id, blob.url)
  })

  it('a rotated SESSION_AUDIO_CONVEX_SECRET keeps the uploads of the rotation window; after it they attach', async () => {
    use()
    const id = await recording()
    const blob = await stored(id)
    use({ convexSecret: crypto.randomBytes(32).toString('hex') })
    await expectKept(id, blob.pathname, await complete(id, blob.url), 'attach_secret_mismatch')
    await expectKept(id, blob.pathname, await complete(id, blob.url), 'attach_secret_mismatch')
    use()
    expect((await complete(id, blob.url)).status).toBe(201)
    await expectAttached(id, blob.url)
  })

  it('the breaker failing fast after an outage keeps the upload it refuses', async () => {
    use()
    const first = await recording()
    const a = await stored(first)
    const second = await recording()
    const b = await stored(second)
    s.convex.state.fail = { status: 503, kind: 'mutation' }
    await expectKept(first, a.pathname, await complete(first, a.url), 'convex_unavailable')
    // Convex is back, but this instance's breaker fails the attach fast for its window.
    const calls = s.convex.calls.query + s.convex.calls.mutation
    await expectKept(second, b.pathname, await complete(second, b.url), 'convex_unavailable')
    expect(s.convex.calls.query + s.convex.calls.mutation).toBe(calls) // failed fast: Convex never asked
    use()
    for (const [id, blob] of [
      [first, a],
      [second, b],
    ] as const) {
      expect([200, 201]).toContain((await complete(id, blob.url)).status)
      await expectAttached(id, blob.url)
    }
  })

  it("Blob's webhook during a Convex outage is answered 503 (Blob retries), the blob kept; delivered again, it attaches", async () => {
    use()
    const id = await recording()
    const blob = await stored(id)
    s.convex.state.fail = { status: 503, kind: 'mutation', sticky: true }
    try {
      await s.blob.releaseWebhooks()
      expect(s.blob.webhooks.at(-1)!.status).toBe(503)
    } finally {
      clearFaults()
    }
    expect(s.blob.list()).toContain(blob.pathname)
    expect((await s.convex.getSession(id)).status).toBe('recording')
    use()
    expect((await complete(id, blob.url)).status).toBe(201)
    await expectAttached(id, blob.url)
  })
})

describe('what the review found', () => {
  /** The same blob's URL with the first letter of its name percent-encoded. */
  const respelt = (url: string) =>
    url.replace(/\/([^/])([^/]*)$/, (_, c: string, rest: string) => `/%${c.charCodeAt(0).toString(16)}${rest}`)

  it('an attached blob completed again under another spelling while head fails: 200 from the record, nothing deleted', async () => {
    use()
    const id = await recording()
    const blob = await stored(id)
    expect((await complete(id, blob.url)).status).toBe(201)
    s.blob.state.fail = { status: 503, code: 'service_unavailable', kind: 'head', sticky: true }
    let res: Response
    try {
      res = await complete(id, respelt(blob.url))
    } finally {
      clearFaults()
    }
    expect(res.status).toBe(200)
    expect(s.blob.list()).toContain(blob.pathname)
    const get = await s.get(id, { token: alice })
    expect(get.status).toBe(200)
    await get.arrayBuffer()
  })

  it('a blob of a session that holds another, refused while head fails: deleted and answered 409 final, not "kept"', async () => {
    use()
    const id = await recording()
    const winner = await stored(id)
    const loser = await clientUpload(id)
    expect((await complete(id, winner.url)).status).toBe(201)
    s.blob.state.fail = { status: 503, code: 'service_unavailable', kind: 'head', sticky: true }
    let res: Response
    try {
      res = await complete(id, loser.url)
    } finally {
      clearFaults()
    }
    const e = await errorOf(res)
    expect([e.status, e.code, e.final]).toEqual([409, 'invalid_session_state', true])
    expect(s.blob.list()).not.toContain(loser.pathname)
    expect(s.blob.list()).toContain(winner.pathname)
  })

  it('a read of the stored blob cut short is the store failing: kept (503 storage_failed), never measured as short audio', async () => {
    use()
    const id = await recording()
    const blob = await stored(id)
    s.blob.state.misbehave = { kind: 'read', mode: 'short', sticky: true }
    let res: Response
    try {
      res = await complete(id, blob.url)
    } finally {
      s.blob.state.misbehave = null
    }
    await expectKept(id, blob.pathname, res, 'storage_failed')
    expect((await complete(id, blob.url)).status).toBe(201) // measured whole, not the cut read remembered
  })

  it("Clerk's rate limit on a completion: kept, and Retry-After is Clerk's, not sooner", async () => {
    const id = await recording()
    const blob = await stored(id)
    use()
    s.clerk.state.fail = { status: 429, kind: 'tokens', retryAfter: 60 }
    let res: Response
    try {
      res = await complete(id, blob.url)
    } finally {
      clearFaults()
    }
    expect(res.headers.get('retry-after')).toBe('60')
    const e = await errorOf(res)
    expect([e.status, e.code, e.final]).toEqual([503, 'auth_rate_limited', false])
    expect(s.blob.list()).toContain(blob.pathname)
  })

  it('a Convex deployment whose store setting names another store: 503 attach_config_mismatch, kept', async () => {
    use()
    const id = await recording()
    const blob = await stored(id)
    const hosts = s.convex.env.SESSION_AUDIO_BLOB_HOSTS
    s.convex.env.SESSION_AUDIO_BLOB_HOSTS = 'https://another-store.example'
    try {
      await expectKept(id, blob.pathname, await complete(id, blob.url), 'attach_config_mismatch')
    } finally {
      s.convex.env.SESSION_AUDIO_BLOB_HOSTS = hosts
    }
    expect((await complete(id, blob.url)).status).toBe(201)
  })
})

describe('refusals about the recording still delete it', () => {
  it('a declared duration the bytes contradict deletes the blob: final', async () => {
    use()
    const id = await recording()
    const blob = await stored(id)
    const e = await errorOf(await complete(id, blob.url, 1500)) // 3 s in the bytes
    expect([e.status, e.code, e.final]).toEqual([400, 'duration_mismatch', true])
    expect(s.blob.list()).not.toContain(blob.pathname)
  })

  it('a session that holds another blob: this one is deleted, 409 final', async () => {
    use()
    const id = await recording()
    const winner = await stored(id)
    const loser = await clientUpload(id)
    expect((await complete(id, winner.url)).status).toBe(201)
    const e = await errorOf(await complete(id, loser.url))
    expect([e.status, e.code, e.final]).toEqual([409, 'invalid_session_state', true])
    expect(s.blob.list()).not.toContain(loser.pathname)
    expect(s.blob.list()).toContain(winner.pathname)
  })
})

describe('one blob, one spelling, one whole read', () => {
  it('five completions of one blob under five query strings: attached once, the blob read whole once', async () => {
    use()
    const id = await recording()
    const blob = await stored(id)
    const reads = s.blob.calls.read
    const answers = await Promise.all([1, 2, 3, 4, 5].map((v) => complete(id, `${blob.url}?v=${v}`)))
    expect(answers.map((r) => r.status).sort()).toEqual([200, 200, 200, 200, 201])
    // One completion reads the first bytes and then the whole blob; the others answer from the record.
    expect(s.blob.calls.read - reads).toBe(2)
    await expectAttached(id, blob.url)
  })

  it('completions retried while the attach keeps failing read the blob whole once between them', async () => {
    use()
    const id = await recording()
    const blob = await stored(id)
    const reads = s.blob.calls.read
    for (let i = 0; i < 3; i++) {
      // A thrown error: Convex answers, so the breaker stays closed and each try gets this far.
      s.convex.state.fail = { functionError: 'database overloaded', kind: 'mutation' }
      await expectKept(id, blob.pathname, await complete(id, blob.url), 'convex_error')
    }
    clearFaults()
    // Each try reads the first bytes (the container check); only the first reads it whole.
    expect(s.blob.calls.read - reads).toBe(3 + 1)
    expect((await complete(id, blob.url)).status).toBe(201)
    expect(s.blob.calls.read - reads).toBe(4 + 1)
  })
})
