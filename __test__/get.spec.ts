// GET end to end: real Clerk-, Convex- and storage-compatible servers on 127.0.0.1, the real
// addon, real audio bytes. Range expectations are what `send` answers directly.
import net from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startAudioServer } from '../stack/audio-server.mjs'
import { startRouteServer } from '../stack/route-server.mjs'
import { createAudioHandlers } from '../index.js'
import { errorOf, startStack, until, type Stack } from './helpers'

let s: Stack
let alice: string
let sessionId: string

beforeAll(async () => {
  s = await startStack()
  alice = await s.clerk.sessionToken({ sub: 'user_alice' })
  sessionId = await s.session('user_alice')
})
afterAll(() => s.close())

const bytes = async (res: Response) => Buffer.from(await res.arrayBuffer())

describe('GET streams the owner audio', () => {
  it('streams the whole file byte-identical with the storage headers relayed', async () => {
    const res = await s.get(sessionId, { token: alice })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('audio/wav')
    expect(res.headers.get('content-length')).toBe(String(s.wav.length))
    expect(res.headers.get('accept-ranges')).toBe('bytes')
    expect(res.headers.get('etag')).toMatch(/^W\/"/)
    expect(res.headers.get('last-modified')).toBeTruthy()
    expect(res.headers.get('cache-control')).toBe('private, no-transform')
    expect(res.headers.get('x-content-type-options')).toBe('nosniff')
    expect(res.headers.get('x-accel-buffering')).toBe('no')
    expect(res.headers.get('vary')).toBe('Cookie, Authorization')
    expect((await bytes(res)).equals(s.wav)).toBe(true)
  })

  it('reads the token from the __session cookie, and the suffixed variant', async () => {
    for (const cookie of [`__session=${alice}`, `other=1; __session_Ab12Cd34=${alice}`]) {
      const res = await s.get(sessionId, { headers: { cookie } })
      expect(res.status).toBe(200)
      await res.arrayBuffer()
    }
  })

  const len = () => s.wav.length
  const rangeCases: [string, string, number, () => string, () => Buffer][] = [
    ['first two bytes (Safari probe)', 'bytes=0-1', 206, () => `bytes 0-1/${len()}`, () => s.wav.subarray(0, 2)],
    ['open-ended', 'bytes=1000-', 206, () => `bytes 1000-${len() - 1}/${len()}`, () => s.wav.subarray(1000)],
    [
      'suffix',
      'bytes=-500',
      206,
      () => `bytes ${len() - 500}-${len() - 1}/${len()}`,
      () => s.wav.subarray(len() - 500),
    ],
    [
      'end past EOF is clamped',
      'bytes=100-99999999',
      206,
      () => `bytes 100-${len() - 1}/${len()}`,
      () => s.wav.subarray(100),
    ],
    // Forwarded; `send` (like S3) answers a multi-range request with the whole file, and we relay that.
    ['multi-range, to a storage that answers it with the whole file', 'bytes=0-1,5-6', 200, () => '', () => s.wav],
  ]
  for (const [name, range, status, contentRange, expected] of rangeCases) {
    it(`Range ${name} → ${status}`, async () => {
      const res = await s.get(sessionId, { token: alice, headers: { range } })
      expect(res.status).toBe(status)
      expect(res.headers.get('content-range') ?? '').toBe(contentRange())
      const body = await bytes(res)
      expect(res.headers.get('content-length')).toBe(String(body.length))
      expect(body.equals(expected())).toBe(true)
    })
  }

  describe('storage decides, we relay: multi-range and malformed values', () => {
    let multiId: string
    beforeAll(async () => {
      multiId = await s.session('user_alice', '/multi/tone.wav')
    })
    const lastRange = () => s.audio.requests.filter((r) => r.path === '/multi/tone.wav').at(-1)!.range

    /** The parts of a multipart/byteranges body: [content-range, bytes]. */
    function parts(body: Buffer, boundary: string): [string, Buffer][] {
      const out: [string, Buffer][] = []
      const delimiter = Buffer.from(`\r\n--${boundary}`)
      let at = body.indexOf(delimiter)
      while (at >= 0) {
        const headEnd = body.indexOf('\r\n\r\n', at)
        const next = body.indexOf(delimiter, at + delimiter.length)
        if (headEnd < 0 || next < 0) break
        const head = body.subarray(at + delimiter.length, headEnd).toString('latin1')
        const range = /content-range: ([^\r\n]+)/i.exec(head)![1]
        out.push([range, body.subarray(headEnd + 4, next)])
        at = next
      }
      return out
    }

    it('a multi-range request is forwarded unchanged and its multipart/byteranges relayed with its boundary', async () => {
      const range = 'bytes=0-9, 1000-1099,-16'
      const res = await s.get(multiId, { token: alice, headers: { range } })
      expect(lastRange()).toBe(range)
      expect(res.status).toBe(206)
      const type = res.headers.get('content-type')!
      expect(type).toMatch(/^multipart\/byteranges; boundary=/)
      const body = await bytes(res)
      expect(res.headers.get('content-length')).toBe(String(body.length))
      const got = parts(body, type.split('boundary=')[1])
      const n = s.wav.length
      expect(got.map(([r]) => r)).toEqual([`bytes 0-9/${n}`, `bytes 1000-1099/${n}`, `bytes ${n - 16}-${n - 1}/${n}`])
      expect(got[0][1].equals(s.wav.subarray(0, 10))).toBe(true)
      expect(got[1][1].equals(s.wav.subarray(1000, 1100))).toBe(true)
      expect(got[2][1].equals(s.wav.subarray(n - 16))).toBe(true)
    })

    it('a range set storage can satisfy only in part, or not at all: its 206 and its 416', async () => {
      const n = s.wav.length
      const one = await s.get(multiId, { token: alice, headers: { range: `bytes=${n + 5}-,,4-7` } })
      expect([one.status, one.headers.get('content-range')]).toEqual([206, `bytes 4-7/${n}`])
      expect((await bytes(one)).equals(s.wav.subarray(4, 8))).toBe(true)
      const none = await s.get(multiId, { token: alice, headers: { range: `bytes=${n}-,${n + 9}-` } })
      expect([none.status, none.headers.get('content-range')]).toEqual([416, `bytes */${n}`])
    })

    // Values storage itself rejects or ignores: forwarded exactly as sent, and whatever storage
    // answers (its 200, 206 or 416) is what the client gets. Checked against both storages: `send`
    // (/audio/) and the multi-range one (/multi/), each asked directly with the same value.
    const odd = ['bytes=5-2', 'bytes=0 -1', 'bytes=2-1,0-0', 'bytes=0-1,x', 'items=0-1', 'bytes=', 'bytes=-0']
    for (const range of odd) {
      it(`Range ${JSON.stringify(range)} is forwarded unchanged and storage's answer relayed`, async () => {
        for (const path of ['/multi/tone.wav', '/audio/tone.wav']) {
          const id = path === '/multi/tone.wav' ? multiId : sessionId
          const res = await s.get(id, { token: alice, headers: { range } })
          const sent = s.audio.requests.filter((r) => r.path.endsWith(path)).at(-1)!
          expect(sent.range).toBe(range)
          const direct = await fetch(`${s.audio.url}${path}`, { headers: { range } })
          expect([res.status, res.headers.get('content-range')]).toEqual([
            direct.status,
            direct.headers.get('content-range'),
          ])
          expect((await bytes(res)).equals(Buffer.from(await direct.arrayBuffer()))).toBe(true)
        }
      })
    }

    it('a Range value that is not printable ASCII, or 1 KiB or longer, is not forwarded', async () => {
      for (const range of ['bytes=\u00e9-1', `bytes=0-1${',2-3'.repeat(300)}`]) {
        const res = await s.get(multiId, { token: alice, headers: { range } })
        expect(lastRange()).toBeUndefined()
        expect(res.status).toBe(200)
        expect((await bytes(res)).equals(s.wav)).toBe(true)
      }
    })
  })

  it('unsatisfiable range → 416 relayed with bytes */len', async () => {
    const res = await s.get(sessionId, { token: alice, headers: { range: `bytes=${s.wav.length + 10}-` } })
    expect(res.status).toBe(416)
    expect(res.headers.get('content-range')).toBe(`bytes */${s.wav.length}`)
  })

  it('If-Range with a stale validator → 200 full body; with the current ETag → 206', async () => {
    const first = await s.get(sessionId, { token: alice })
    const etag = first.headers.get('etag')!
    await first.arrayBuffer()
    const stale = await s.get(sessionId, { token: alice, headers: { range: 'bytes=0-1', 'if-range': '"stale"' } })
    expect(stale.status).toBe(200)
    expect((await bytes(stale)).length).toBe(s.wav.length)
    const fresh = await s.get(sessionId, { token: alice, headers: { range: 'bytes=0-1', 'if-range': etag } })
    expect(fresh.status).toBe(206)
    expect((await bytes(fresh)).length).toBe(2)
  })

  it('If-None-Match with the current ETag → 304 without a body', async () => {
    const first = await s.get(sessionId, { token: alice })
    const etag = first.headers.get('etag')!
    await first.arrayBuffer()
    const res = await s.get(sessionId, { token: alice, headers: { 'if-none-match': etag } })
    expect(res.status).toBe(304)
    expect(res.body).toBeNull()
  })

  it('forwards only the allowlisted headers, with Accept-Encoding: identity', async () => {
    const before = s.audio.requests.length
    const res = await s.get(sessionId, {
      token: alice,
      headers: { range: 'bytes=0-1', 'accept-encoding': 'gzip', 'x-secret': 'no' },
    })
    await res.arrayBuffer()
    const seen = s.audio.requests.slice(before).at(-1)!.headers
    expect(seen['accept-encoding']).toBe('identity')
    expect(seen.range).toBe('bytes=0-1')
    expect(seen.authorization).toBeUndefined()
    expect(seen.cookie).toBeUndefined()
    expect(seen['x-secret']).toBeUndefined()
  })

  it('HEAD answers the headers without a body', async () => {
    const res = await s.get(sessionId, { token: alice, method: 'HEAD' })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-length')).toBe(String(s.wav.length))
    expect(res.body).toBeNull()
  })

  it('a non-audio upstream type is served as application/octet-stream', async () => {
    const id = await s.session('user_alice', '/html')
    const res = await s.get(id, { token: alice })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('application/octet-stream')
    await res.arrayBuffer()
  })

  it('adds max-age when cacheMaxAge is set', async () => {
    const res = await s.get(sessionId, { token: alice, handlers: s.handlers({ cacheMaxAge: 60 }) })
    expect(res.headers.get('cache-control')).toBe('private, no-transform, max-age=60')
    await res.arrayBuffer()
  })
})

describe('over HTTP, as Next serves it', () => {
  it('200, 206, 416, 304 and HEAD are framed correctly on the wire', async () => {
    const app = await startRouteServer({ handlers: createAudioHandlers(s.options()) })
    try {
      const url = `${app.url}/api/listening-sessions/${sessionId}/audio`
      const auth = { authorization: `Bearer ${alice}` }
      const full = await fetch(url, { headers: auth })
      expect(Buffer.from(await full.arrayBuffer()).equals(s.wav)).toBe(true)
      const part = await fetch(url, { headers: { ...auth, range: 'bytes=10-19' } })
      expect([part.status, (await part.arrayBuffer()).byteLength]).toEqual([206, 10])
      const past = await fetch(url, { headers: { ...auth, range: `bytes=${s.wav.length}-` } })
      expect([past.status, past.headers.get('content-length'), (await past.arrayBuffer()).byteLength]).toEqual([
        416,
        '0',
        0,
      ])
      const cached = await fetch(url, { headers: { ...auth, 'if-none-match': full.headers.get('etag')! } })
      expect(cached.status).toBe(304)
      const head = await fetch(url, { method: 'HEAD', headers: auth })
      expect([head.status, head.headers.get('content-length')]).toEqual([200, String(s.wav.length)])
      // The connection survived all of that: one more request on it works.
      expect((await fetch(url, { headers: { ...auth, range: 'bytes=0-1' } })).status).toBe(206)
    } finally {
      await app.close()
    }
  })
})

describe('caching keeps seeks off Clerk and Convex', () => {
  it('a burst of range requests mints one Convex token and runs one lookup', async () => {
    const token = await s.clerk.sessionToken({ sub: 'user_carol' })
    const id = await s.session('user_carol')
    const [tokens, queries] = [s.clerk.calls.tokens, s.convex.calls.query]
    const handlers = s.handlers({ lookupTtlMs: 60_000 })
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        s.get(id, { token, handlers, headers: { range: `bytes=${i * 100}-${i * 100 + 99}` } }),
      ),
    )
    for (const r of results) {
      expect(r.status).toBe(206)
      expect((await r.arrayBuffer()).byteLength).toBe(100)
    }
    expect(s.clerk.calls.tokens - tokens).toBe(1)
    expect(s.convex.calls.query - queries).toBe(1)
  })
})

describe('refusals', () => {
  it('a missing session is 404 session_not_found', async () => {
    const e = await errorOf(await s.get('k_does_not_exist', { token: alice }))
    expect([e.status, e.code]).toEqual([404, 'session_not_found'])
  })

  it("another user's session is 404, whether Convex filters it or not", async () => {
    const bobs = await s.session('user_bob')
    const e1 = await errorOf(await s.get(bobs, { token: alice }))
    expect([e1.status, e1.code]).toEqual([404, 'session_not_found'])
    // A Convex function that forgot its ownership check: the addon's own check still holds.
    s.convex.state.override['listeningSessions:getForAudio'] = async (ctx: any, _identity: unknown, args: any) => {
      const d = await ctx.db.get(args.sessionId)
      return d && { _id: d._id, userId: d.userId, status: d.status, audioUrl: d.audioUrl ?? null }
    }
    try {
      const e2 = await errorOf(await s.get(bobs, { token: alice, handlers: s.handlers({ lookupTtlMs: 0 }) }))
      expect([e2.status, e2.code, e2.message]).toEqual([404, 'session_not_found', e1.message])
    } finally {
      delete s.convex.state.override['listeningSessions:getForAudio']
    }
  })

  it('a session without audio is 404 audio_not_found', async () => {
    const id = await s.session('user_alice', null, { status: 'recording' })
    const e = await errorOf(await s.get(id, { token: alice }))
    expect([e.status, e.code]).toEqual([404, 'audio_not_found'])
  })

  it('a storage 404 is audio_not_found; a storage 500 is 502 upstream_failed', async () => {
    const gone = await errorOf(await s.get(await s.session('user_alice', '/audio/missing.wav'), { token: alice }))
    expect([gone.status, gone.code]).toEqual([404, 'audio_not_found'])
    const broken = await errorOf(await s.get(await s.session('user_alice', '/status/500'), { token: alice }))
    expect([broken.status, broken.code]).toEqual([502, 'upstream_failed'])
  })

  it('storage that does not answer in time is 504 upstream_timeout', async () => {
    // Accepts the connection and never answers.
    const silent = net.createServer(() => {})
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()))
    const port = (silent.address() as { port: number }).port
    const id = await s.session('user_alice', `http://127.0.0.1:${port}/{session}/audio/tone.wav`)
    const e = await errorOf(
      await s.get(id, {
        token: alice,
        handlers: s.handlers({ trustedHosts: [`127.0.0.1:${port}`], upstreamTimeoutMs: 300 }),
      }),
    )
    expect([e.status, e.code]).toEqual([504, 'upstream_timeout'])
    silent.close()
    void startAudioServer
  })

  it('storage that resets mid-stream errors the body stream instead of ending it short', async () => {
    const id = await s.session('user_alice', '/reset/tone.wav')
    const res = await s.get(id, { token: alice })
    expect(res.status).toBe(200)
    await expect(res.arrayBuffer()).rejects.toThrow(/upstream failed mid-stream/)
  })

  it('Convex down is 502 convex_unavailable; a Convex function error is 502 convex_error', async () => {
    const token = await s.clerk.sessionToken({ sub: 'user_dave' })
    const id = await s.session('user_dave')
    const handlers = s.handlers({ lookupTtlMs: 0 })
    s.convex.state.fail = { status: 500 }
    const down = await errorOf(await s.get(id, { token, handlers }))
    expect([down.status, down.code]).toEqual([502, 'convex_unavailable'])
    // The outage is remembered for a few seconds: the next request fails fast, without a call.
    const queries = s.convex.calls.query
    const fast = await errorOf(await s.get(id, { token, handlers }))
    expect([fast.status, fast.code, s.convex.calls.query - queries]).toEqual([502, 'convex_unavailable', 0])
    // A thrown function error is not an outage (a fresh handler: the last one is failing fast).
    const fresh = s.handlers({ lookupTtlMs: 0 })
    s.convex.state.fail = { functionError: 'boom' }
    const fnErr = await errorOf(await s.get(id, { token, handlers: fresh }))
    expect([fnErr.status, fnErr.code]).toEqual([502, 'convex_error'])
    const unreachable = await errorOf(
      await s.get(id, { token, handlers: s.handlers({ convexUrl: 'http://127.0.0.1:9' }) }),
    )
    expect([unreachable.status, unreachable.code]).toEqual([502, 'convex_unavailable'])
    // And after the failures, the same request works: nothing bad was cached.
    const ok = await s.get(id, { token, handlers: fresh })
    expect(ok.status).toBe(200)
    await ok.arrayBuffer()
  })

  it('Convex rejecting the template token is 502 convex_auth_rejected', async () => {
    const token = await s.clerk.sessionToken({ sub: 'user_erin' })
    s.convex.state.fail = {
      status: 401,
      body: JSON.stringify({ code: 'NoAuthProvider', message: 'No auth provider found' }),
    }
    const e = await errorOf(await s.get(await s.session('user_erin'), { token }))
    expect([e.status, e.code]).toEqual([502, 'convex_auth_rejected'])
    expect(e.message).toMatch(/auth\.config/)
  })

  it('Clerk rate limiting is 503 with Retry-After', async () => {
    const token = await s.clerk.sessionToken({ sub: 'user_frank' })
    s.clerk.state.fail = { status: 429, sticky: true, retryAfter: 3 }
    try {
      const res = await s.get(await s.session('user_frank'), { token })
      expect(res.headers.get('retry-after')).toBe('3')
      const e = await errorOf(res)
      expect([e.status, e.code]).toEqual([503, 'auth_rate_limited'])
    } finally {
      s.clerk.state.fail = null
    }
  })

  it('a 429 from the JWKS endpoint is 503 auth_rate_limited with its Retry-After too', async () => {
    const handlers = s.handlers() // a fresh handler: an empty key cache
    s.clerk.state.fail = { status: 429, kind: 'jwks', retryAfter: 7 }
    try {
      const res = await s.get(sessionId, { token: alice, handlers })
      expect(res.headers.get('retry-after')).toBe('7')
      const e = await errorOf(res)
      expect([e.status, e.code]).toEqual([503, 'auth_rate_limited'])
    } finally {
      s.clerk.state.fail = null
    }
  })

  it('a burst during a Convex outage makes one call per window, across users and sessions', async () => {
    const handlers = s.handlers({ lookupTtlMs: 0 }) // a handler of its own
    const users = ['user_ola', 'user_per', 'user_quin']
    const tokens = await Promise.all(users.map((sub) => s.clerk.sessionToken({ sub })))
    const ids = await Promise.all(users.map((u) => s.session(u)))
    s.convex.state.fail = { status: 503, kind: 'query', sticky: true }
    try {
      const before = s.convex.calls.query
      const first = await errorOf(await s.get(ids[0], { token: tokens[0], handlers }))
      expect([first.status, first.code]).toEqual([502, 'convex_unavailable'])
      const serial = []
      for (let i = 0; i < 15; i++) serial.push(await s.get(ids[i % 3], { token: tokens[i % 3], handlers }))
      const burst = await Promise.all(
        Array.from({ length: 30 }, (_, i) => s.get(ids[i % 3], { token: tokens[i % 3], handlers })),
      )
      for (const res of [...serial, ...burst]) {
        const e = await errorOf(res)
        expect([e.status, e.code]).toEqual([502, 'convex_unavailable'])
      }
      expect(s.convex.calls.query - before).toBe(1)
    } finally {
      s.convex.state.fail = null
    }
    // Convex is back: after the window, one probe closes the breaker and everyone is served.
    expect(await until(async () => (await s.get(ids[0], { token: tokens[0], handlers })).status === 200, 8000)).toBe(
      true,
    )
    const res = await Promise.all(ids.map((id, i) => s.get(id, { token: tokens[i], handlers })))
    expect(res.map((r) => r.status)).toEqual([200, 200, 200])
  })

  it('a burst during a Clerk outage makes one token call per window; JWKS likewise', async () => {
    const handlers = s.handlers({ lookupTtlMs: 0 })
    const users = ['user_rae', 'user_sol']
    const tokens = await Promise.all(users.map((sub) => s.clerk.sessionToken({ sub })))
    const ids = await Promise.all(users.map((u) => s.session(u)))
    s.clerk.state.fail = { status: 503, kind: 'tokens', sticky: true }
    try {
      const before = s.clerk.calls.tokens
      const first = await errorOf(await s.get(ids[0], { token: tokens[0], handlers }))
      expect([first.status, first.code]).toEqual([502, 'auth_provider_unavailable'])
      const burst = await Promise.all(
        Array.from({ length: 20 }, (_, i) => s.get(ids[i % 2], { token: tokens[i % 2], handlers })),
      )
      for (let i = 0; i < 10; i++) burst.push(await s.get(ids[i % 2], { token: tokens[i % 2], handlers }))
      for (const res of burst) expect((await errorOf(res)).code).toBe('auth_provider_unavailable')
      expect(s.clerk.calls.tokens - before).toBe(1)
    } finally {
      s.clerk.state.fail = null
    }
    // A cold handler (no keys yet) while the JWKS endpoint is down: one fetch for the whole burst.
    const cold = s.handlers({ lookupTtlMs: 0 })
    s.clerk.state.fail = { status: 503, kind: 'jwks', sticky: true }
    try {
      const before = s.clerk.calls.jwks
      const burst = await Promise.all(
        Array.from({ length: 20 }, (_, i) => s.get(ids[i % 2], { token: tokens[i % 2], handlers: cold })),
      )
      for (let i = 0; i < 10; i++) burst.push(await s.get(ids[0], { token: tokens[0], handlers: cold }))
      for (const res of burst) expect((await errorOf(res)).code).toBe('auth_provider_unavailable')
      expect(s.clerk.calls.jwks - before).toBe(1)
    } finally {
      s.clerk.state.fail = null
    }
  })

  it('a malformed session id is 400 invalid_session_id before any cache, call or record sees it', async () => {
    const before = s.convex.calls.query + s.convex.calls.mutation + s.clerk.calls.tokens + s.clerk.calls.jwks
    for (const id of ['../etc', 'a b', 'x'.repeat(129), 'sess;drop', 'é']) {
      const g = await errorOf(await s.get(id, { token: alice }))
      expect([id, g.status, g.code]).toEqual([id, 400, 'invalid_session_id'])
      const p = await errorOf(
        await s.post(id, 'RIFF', { token: alice, headers: { 'x-duration-ms': '1000', 'x-content-type': 'audio/wav' } }),
      )
      expect([id, p.status, p.code]).toEqual([id, 400, 'invalid_session_id'])
    }
    expect(s.convex.calls.query + s.convex.calls.mutation + s.clerk.calls.tokens + s.clerk.calls.jwks).toBe(before)
  })

  it('an unknown JWT template is 503 config_invalid naming the setting', async () => {
    const e = await errorOf(
      await s.get(sessionId, {
        token: await s.clerk.sessionToken({ sub: 'user_alice' }),
        handlers: s.handlers({ convexTemplate: 'nope', lookupTtlMs: 0 }),
      }),
    )
    expect([e.status, e.code]).toEqual([503, 'config_invalid'])
    expect(e.message).toMatch(/SESSION_AUDIO_CONVEX_TEMPLATE/)
  })

  it('POST, PUT and friends on the GET handler are 405', async () => {
    const req = new Request('http://app.local/x', { method: 'DELETE', headers: { authorization: `Bearer ${alice}` } })
    const e = await errorOf(await createAudioHandlers(s.options()).GET(req, { params: { sessionId } }))
    expect([e.status, e.code]).toEqual([405, 'method_not_allowed'])
  })

  it('a route without [sessionId] is 400 missing_session_id; [id] is accepted', async () => {
    const h = createAudioHandlers(s.options())
    const req = () => new Request('http://app.local/x', { headers: { authorization: `Bearer ${alice}` } })
    const e = await errorOf(await h.GET(req(), { params: {} }))
    expect([e.status, e.code]).toEqual([400, 'missing_session_id'])
    const ok = await h.GET(req(), { params: Promise.resolve({ id: sessionId }) })
    expect(ok.status).toBe(200)
    await ok.arrayBuffer()
  })
})
