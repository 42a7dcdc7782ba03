// Observability: request ids, Server-Timing, the per-request record (callback and JSON log line),
// Sentry events for 5xx only — scrubbed — and panics that become a 500 instead of a dead process.
import { execFile } from 'node:child_process'
import path from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startSentry } from '../stack/sentry.mjs'
import { createAudioHandlers, type RequestRecord } from '../index.js'
import { errorOf, startStack, until, type Stack } from './helpers'
import { version } from '../package.json'

let s: Stack
let sentry: Awaited<ReturnType<typeof startSentry>>
let alice: string
let sessionId: string

beforeAll(async () => {
  s = await startStack()
  sentry = await startSentry()
  alice = await s.clerk.sessionToken({ sub: 'user_alice' })
  sessionId = await s.session('user_alice')
})
afterAll(async () => {
  await sentry.close()
  await s.close()
})

describe('request id and Server-Timing', () => {
  it('echoes x-request-id, or x-vercel-id, or a generated one, on successes and refusals', async () => {
    const given = await s.get(sessionId, { token: alice, headers: { 'x-request-id': 'req-123' } })
    expect(given.headers.get('x-request-id')).toBe('req-123')
    await given.arrayBuffer()
    const vercel = await s.get(sessionId, { headers: { 'x-vercel-id': 'fra1::abc' } })
    expect([vercel.status, vercel.headers.get('x-request-id')]).toEqual([401, 'fra1::abc'])
    const generated = await s.get(sessionId, { token: alice })
    expect(generated.headers.get('x-request-id')).toMatch(/^sa_[0-9a-f]{16}$/)
    await generated.arrayBuffer()
  })

  it('Server-Timing names the phases with durations, and can be switched off', async () => {
    const res = await s.get(sessionId, { token: alice, handlers: s.handlers({ lookupTtlMs: 0 }) })
    const timing = res.headers.get('server-timing')!
    await res.arrayBuffer()
    const entries = timing.split(', ').map((e) => e.split(';dur='))
    expect(entries.map(([name]) => name)).toEqual(['auth', 'token', 'lookup', 'upstream'])
    for (const [, dur] of entries) expect(Number(dur)).toBeGreaterThanOrEqual(0)
    const refused = await s.get(sessionId)
    expect(refused.headers.get('server-timing')).toMatch(/^auth;dur=\d+\.\d$/)
    const off = await s.get(sessionId, { token: alice, handlers: s.handlers({ serverTiming: false }) })
    expect(off.headers.get('server-timing')).toBeNull()
    await off.arrayBuffer()
  })
})

describe('the per-request record', () => {
  it('reaches onRequest once per request, after the stream ends, with bytes, phases and a user hash', async () => {
    const records: RequestRecord[] = []
    const handlers = s.handlers({ onRequest: (r) => records.push(r) })
    const res = await s.get(sessionId, { token: alice, handlers, headers: { 'x-request-id': 'rec-1' } })
    await res.arrayBuffer()
    const denied = await s.get(sessionId, { handlers, headers: { 'x-request-id': 'rec-2' } })
    await denied.arrayBuffer()
    expect(await until(() => records.length === 2)).toBe(true)
    const [ok, refused] = records
    expect(ok).toMatchObject({
      requestId: 'rec-1',
      method: 'GET',
      route: 'get',
      sessionId,
      status: 200,
      bytes: s.wav.length,
    })
    expect(ok.errorCode).toBeUndefined()
    expect(ok.userHash).toMatch(/^[0-9a-f]{16}$/)
    expect(JSON.stringify(ok)).not.toContain('user_alice')
    expect(Object.keys(ok.phases).sort()).toEqual(['auth', 'lookup', 'token', 'transfer', 'upstream'])
    expect(refused).toMatchObject({
      requestId: 'rec-2',
      status: 401,
      errorCode: 'token_missing',
      bytes: expect.any(Number),
    })
  })

  it('POST records count the bytes received and time storage and the mutation', async () => {
    const records: RequestRecord[] = []
    const id = await s.session('user_alice', null, { status: 'recording' })
    const res = await s.post(id, s.wav, {
      token: alice,
      headers: { 'x-duration-ms': '5000', 'x-content-type': 'audio/wav' },
      handlers: s.handlers({ onRequest: (r) => records.push(r) }),
    })
    expect(res.status).toBe(201)
    expect(await until(() => records.length === 1)).toBe(true)
    expect(records[0]).toMatchObject({ route: 'post', status: 201, bytes: s.wav.length })
    expect(Object.keys(records[0].phases).sort()).toEqual([
      'auth',
      'entitlements',
      'lookup',
      'mutation',
      'storage',
      'token',
    ])
  })

  it('writes one JSON line per finished request to stderr, and none with SESSION_AUDIO_LOG=off', async () => {
    const script = `
      const { createAudioHandlers } = require(${JSON.stringify(path.resolve(__dirname, '..', 'index.js'))})
      ;(async () => {
        const h = createAudioHandlers(JSON.parse(process.env.OPTS))
        for (const [token, rid] of [[process.env.TOKEN, 'log-ok'], ['', 'log-denied']]) {
          const headers = token ? { authorization: 'Bearer ' + token, 'x-request-id': rid } : { 'x-request-id': rid }
          const req = new Request('http://app.local/x', { headers })
          const res = await h.GET(req, { params: { sessionId: process.env.SESSION_ID } })
          await res.arrayBuffer()
        }
        await new Promise((r) => setTimeout(r, 100))
      })()
    `
    const run = async (log: string) => {
      const { stderr } = await promisify(execFile)(process.execPath, ['-e', script], {
        env: {
          ...process.env,
          OPTS: JSON.stringify(s.options()),
          TOKEN: alice,
          SESSION_ID: sessionId,
          SESSION_AUDIO_LOG: log,
        },
      })
      return stderr
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l))
    }
    const lines = await run('info')
    const requests = lines.filter((l) => l.request_id?.startsWith('log-'))
    expect(requests.map((l) => [l.request_id, l.status, l.level])).toEqual([
      ['log-ok', 200, 'INFO'],
      ['log-denied', 401, 'INFO'],
    ])
    expect(requests[0]).toMatchObject({
      route: 'get',
      method: 'GET',
      session_id: sessionId,
      bytes: s.wav.length,
      target: 'session_audio',
    })
    expect(requests[0].user_hash).toMatch(/^[0-9a-f]{16}$/)
    expect(requests[1].error_code).toBe('token_missing')
    expect(JSON.stringify(lines)).not.toContain(alice)
    expect(await run('off')).toEqual([])
  })
})

describe('Sentry', () => {
  const handlers = (extra = {}) =>
    s.handlers({ sentryDsn: sentry.dsn, sentryEnvironment: 'test', lookupTtlMs: 0, ...extra })

  it('gets exactly one event per 5xx, tagged and scrubbed, and none for 4xx', async () => {
    const before = sentry.events().length
    const secretQuery = '?token=do-not-leak-me&sig=abc'
    const cases: [string, () => Promise<Response>][] = [
      [
        'upstream_failed',
        async () =>
          s.get(await s.session('user_alice', `/status/500${secretQuery}`), { token: alice, handlers: handlers() }),
      ],
      [
        'untrusted_audio_host',
        async () =>
          s.get(await s.session('user_alice', `https://evil.example/a.wav${secretQuery}`), {
            token: alice,
            handlers: handlers(),
          }),
      ],
      [
        'convex_unavailable',
        async () => s.get(sessionId, { token: alice, handlers: handlers({ convexUrl: 'http://127.0.0.1:9' }) }),
      ],
      [
        'config_missing',
        async () => s.get(sessionId, { token: alice, handlers: createAudioHandlers({ sentryDsn: sentry.dsn }) }),
      ],
    ]
    for (const [code, request] of cases) {
      const res = await request()
      expect((await errorOf(res)).code).toBe(code)
    }
    // 4xx: none of these may be reported.
    await (await s.get(sessionId, { handlers: handlers() })).arrayBuffer()
    await (await s.get('k_missing', { token: alice, handlers: handlers() })).arrayBuffer()
    await (await s.post(sessionId, s.wav, { token: alice, handlers: handlers() })).arrayBuffer()
    expect(await until(() => sentry.events().length >= before + cases.length)).toBe(true)
    await new Promise((r) => setTimeout(r, 300)) // anything extra would arrive by now
    const events = sentry.events().slice(before)
    // One event per case. Each distinct configuration has its own Sentry client and sending thread,
    // so their events may arrive in any order.
    expect(events.map((e) => e.tags.error_code).sort()).toEqual(cases.map(([code]) => code).sort())
    for (const e of events) {
      expect(e.level ?? 'error').toBe('error') // the protocol's default level, omitted on the wire
      // The crate's version, which must be the package's.
      expect(e.release).toBe(`session-audio@${version}`)
      expect(e.tags.request_id).toMatch(/^sa_/)
      expect(e.tags.phase).toBeTruthy()
    }
    const upstream = events.find((e) => e.tags.error_code === 'upstream_failed')!
    expect(upstream.environment).toBe('test')
    expect(upstream.tags.phase).toBe('upstream')
    const raw = sentry.envelopes.map((e) => e.raw).join('\n')
    for (const secret of ['do-not-leak-me', alice, s.blob.token, s.clerk.secretKey, 'user_alice']) {
      expect(raw).not.toContain(secret)
    }
    expect(sentry.envelopes.at(-1)!.auth).toMatch(/sentry_key=localpublickey/)
  })

  it('a storage failure after the stream started is reported once, as upstream_failed_mid_stream', async () => {
    const before = sentry.events().length
    const res = await s.get(await s.session('user_alice', '/reset/tone.wav'), { token: alice, handlers: handlers() })
    expect(res.status).toBe(200)
    await expect(res.arrayBuffer()).rejects.toThrow()
    expect(await until(() => sentry.events().length > before)).toBe(true)
    await new Promise((r) => setTimeout(r, 200))
    const events = sentry.events().slice(before)
    expect(events.map((e) => [e.tags.error_code, e.tags.phase, e.tags.status])).toEqual([
      ['upstream_failed_mid_stream', 'transfer', '200'],
    ])
  })

  it('a Sentry that is down changes nothing for users', async () => {
    const dead = 'http://key@127.0.0.1:9/1'
    const failing = await s.get(await s.session('user_alice', '/status/500'), {
      token: alice,
      handlers: s.handlers({ sentryDsn: dead }),
    })
    expect((await errorOf(failing)).code).toBe('upstream_failed')
    const ok = await s.get(sessionId, { token: alice, handlers: s.handlers({ sentryDsn: dead }) })
    expect(ok.status).toBe(200)
    await ok.arrayBuffer()
  })
})

describe('panics', () => {
  it('a panic in the handler is a 500 internal_error plus a Sentry event, and the process keeps serving', async () => {
    const before = sentry.events().length
    const h = createAudioHandlers(s.options({ sentryDsn: sentry.dsn }))
    const req = () =>
      new Request('http://app.local/x', {
        headers: { authorization: `Bearer ${alice}`, 'x-session-audio-test-panic': '1' },
      })
    const e = await errorOf(await h.GET(req(), { params: { sessionId } }))
    expect([e.status, e.code]).toEqual([500, 'internal_error'])
    const p = await errorOf(
      await h.POST(new Request(req(), { method: 'POST', body: s.wav, duplex: 'half' } as RequestInit), {
        params: { sessionId },
      }),
    )
    expect([p.status, p.code]).toEqual([500, 'internal_error'])
    expect(await until(() => sentry.events().length >= before + 2)).toBe(true)
    expect(
      sentry
        .events()
        .slice(before)
        .map((ev) => ev.tags.error_code),
    ).toEqual(['internal_error', 'internal_error'])
    const after = await s.get(sessionId, { token: alice })
    expect(after.status).toBe(200)
    await after.arrayBuffer()
  })

  it('a panic while finishing the request (record, log line, callback) is still a 500 with its request id, and the process keeps serving', async () => {
    const h = createAudioHandlers(s.options())
    const headers = {
      authorization: `Bearer ${alice}`,
      'x-session-audio-test-panic': 'finish',
      'x-request-id': 'fin-1',
    }
    const res = await h.GET(new Request('http://app.local/x', { headers }), { params: { sessionId } })
    const e = await errorOf(res)
    expect([e.status, e.code, res.headers.get('x-request-id')]).toEqual([500, 'internal_error', 'fin-1'])
    const id = await s.session('user_alice', null, { status: 'recording' })
    const post = await h.POST(
      new Request('http://app.local/x', { method: 'POST', headers, body: s.wav, duplex: 'half' } as RequestInit),
      { params: { sessionId: id } },
    )
    expect((await errorOf(post)).status).toBe(500)
    const after = await s.get(sessionId, { token: alice, handlers: h })
    expect(after.status).toBe(200)
    await after.arrayBuffer()
  })
})
