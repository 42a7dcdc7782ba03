// One Clerk session's trouble stays that session's: a revoked session's token replayed in bursts
// makes a handful of Clerk calls and leaves everyone else served; a 429 one session got does not open
// the shared Clerk breaker; pending sessions are signed out unless accepted. Against the loopback
// Clerk with its rate limit on, counting template-token requests at the server.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { errorOf, startStack, type Stack } from './helpers'

describe('a revoked session replayed in bursts (rate limit on)', () => {
  let s: Stack
  // Low enough that one call per request, as before, would hit it within the first waves.
  beforeAll(async () => {
    s = await startStack({ clerk: { rateLimit: 10 } })
  })
  afterAll(async () => {
    await s.close()
  })

  it('300 requests in waves of 20 make at most a handful of Clerk calls; a live user right after is served', async () => {
    const handlers = s.handlers({ lookupTtlMs: 0 })
    const dead = await s.clerk.sessionToken({ sub: 'user_mallory', sid: 'sess_dead_burst' })
    s.clerk.sessions.get('sess_dead_burst')!.status = 'revoked'
    const id = await s.session('user_mallory')
    const codes = new Map<string, number>()
    for (let wave = 0; wave < 15; wave++) {
      const answers = await Promise.all(Array.from({ length: 20 }, () => s.get(id, { token: dead, handlers })))
      for (const res of answers) {
        expect(res.headers.get('www-authenticate')).toMatch(/session_inactive/)
        const e = await errorOf(res)
        codes.set(`${e.status} ${e.code}`, (codes.get(`${e.status} ${e.code}`) ?? 0) + 1)
      }
    }
    expect(Object.fromEntries(codes)).toEqual({ '401 session_inactive': 300 })
    expect(s.clerk.tokenRequests('sess_dead_burst')).toBeLessThanOrEqual(3)
    expect(s.clerk.calls.limited).toBe(0)

    // A different, live user right after: the normal answer, not 503.
    const alice = await s.clerk.sessionToken({ sub: 'user_alice' })
    const res = await s.get(await s.session('user_alice'), { token: alice, handlers })
    expect(res.status).toBe(200)
    expect((await res.arrayBuffer()).byteLength).toBe(s.wav.length)
  })
})

describe('refusals and 429s are charged to the session that got them', () => {
  let s: Stack
  beforeAll(async () => {
    s = await startStack({ clerk: { refusalStatus: { revoked: 403, ended: 422 } } })
  })
  afterAll(async () => {
    await s.close()
  })

  it('a session that is gone (404), revoked (403) or ended (422) is 401 session_inactive, one call each', async () => {
    const handlers = s.handlers()
    const id = await s.session('user_mallory')
    const cases: [string, (sid: string) => void][] = [
      ['sess_gone', (sid) => s.clerk.sessions.delete(sid)],
      ['sess_revoked', (sid) => (s.clerk.sessions.get(sid)!.status = 'revoked')],
      ['sess_ended', (sid) => (s.clerk.sessions.get(sid)!.status = 'ended')],
    ]
    for (const [sid, kill] of cases) {
      const token = await s.clerk.sessionToken({ sub: 'user_mallory', sid })
      kill(sid)
      for (let i = 0; i < 10; i++) {
        const e = await errorOf(await s.get(id, { token, handlers }))
        expect([sid, e.status, e.code]).toEqual([sid, 401, 'session_inactive'])
      }
      expect([sid, s.clerk.tokenRequests(sid)]).toEqual([sid, 1])
    }
  })

  it("a 429 one session got is that session's: it waits out Retry-After, the others are served", async () => {
    const handlers = s.handlers()
    const [frank, grace] = await Promise.all(
      ['user_frank', 'user_grace'].map((sub) => s.clerk.sessionToken({ sub, sid: `sess_${sub}` })),
    )
    const [frankId, graceId] = await Promise.all([s.session('user_frank'), s.session('user_grace')])
    s.clerk.state.fail = { status: 429, kind: 'tokens', retryAfter: 5 } // the next token call only
    const first = await s.get(frankId, { token: frank, handlers })
    expect(first.headers.get('retry-after')).toBe('5')
    expect(await errorOf(first)).toMatchObject({ status: 503, code: 'auth_rate_limited' })
    // Frank again: told to wait what is left, without a call.
    const again = await s.get(frankId, { token: frank, handlers })
    expect(Number(again.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
    expect(Number(again.headers.get('retry-after'))).toBeLessThanOrEqual(5)
    expect(await errorOf(again)).toMatchObject({ status: 503, code: 'auth_rate_limited' })
    expect(s.clerk.tokenRequests('sess_user_frank')).toBe(1)
    // Grace, right after: her normal answer. The shared breaker did not open.
    const res = await s.get(graceId, { token: grace, handlers })
    expect(res.status).toBe(200)
    await res.arrayBuffer()
  })

  it('429s for several distinct sessions within the window open the shared breaker', async () => {
    const handlers = s.handlers()
    const users = ['user_hana', 'user_ivan', 'user_jo', 'user_kim']
    const tokens = await Promise.all(users.map((sub) => s.clerk.sessionToken({ sub, sid: `sess_${sub}` })))
    const ids = await Promise.all(users.map((u) => s.session(u)))
    s.clerk.state.fail = { status: 429, kind: 'tokens', sticky: true, retryAfter: 5 }
    try {
      for (let i = 0; i < users.length; i++) {
        const e = await errorOf(await s.get(ids[i], { token: tokens[i], handlers }))
        expect([users[i], e.status, e.code]).toEqual([users[i], 503, 'auth_rate_limited'])
      }
      // The first three each made their call; the third opened the breaker, so the fourth made none.
      expect(users.map((u) => s.clerk.tokenRequests(`sess_${u}`))).toEqual([1, 1, 1, 0])
    } finally {
      s.clerk.state.fail = null
    }
  })
})

describe('pending sessions', () => {
  let s: Stack
  beforeAll(async () => {
    s = await startStack()
  })
  afterAll(async () => {
    await s.close()
  })

  it('sts "pending" is 401 session_pending by default, before any Clerk token call', async () => {
    const token = await s.clerk.sessionToken({ sub: 'user_alice', sid: 'sess_pending', claims: { sts: 'pending' } })
    const res = await s.get(await s.session('user_alice'), { token })
    expect(res.headers.get('www-authenticate')).toMatch(/session_pending/)
    const e = await errorOf(res)
    expect([e.status, e.code]).toEqual([401, 'session_pending'])
    expect(e.message).toMatch(/acceptPendingSessions/)
    expect(s.clerk.tokenRequests('sess_pending')).toBe(0)
    // An active session is served as ever.
    const active = await s.clerk.sessionToken({ sub: 'user_alice', claims: { sts: 'active' } })
    const ok = await s.get(await s.session('user_alice'), { token: active })
    expect(ok.status).toBe(200)
    await ok.arrayBuffer()
  })

  it('acceptPendingSessions (or SESSION_AUDIO_ACCEPT_PENDING_SESSIONS=1) accepts them', async () => {
    const token = await s.clerk.sessionToken({ sub: 'user_bob', claims: { sts: 'pending' } })
    const id = await s.session('user_bob')
    const res = await s.get(id, { token, handlers: s.handlers({ acceptPendingSessions: true }) })
    expect(res.status).toBe(200)
    await res.arrayBuffer()
    process.env.SESSION_AUDIO_ACCEPT_PENDING_SESSIONS = '1'
    try {
      const viaEnv = await s.get(id, { token, handlers: s.handlers() })
      expect(viaEnv.status).toBe(200)
      await viaEnv.arrayBuffer()
    } finally {
      delete process.env.SESSION_AUDIO_ACCEPT_PENDING_SESSIONS
    }
  })
})
