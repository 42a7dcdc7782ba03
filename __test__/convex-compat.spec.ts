// The Convex-compatible server must speak what the real deployment speaks: prove it with the
// unmodified `ConvexHttpClient` from the `convex` package, the client our Rust code imitates.
import { ConvexHttpClient } from 'convex/browser'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { signAttach, startStack, type Stack, convexToken } from './helpers'

let s: Stack
beforeAll(async () => {
  s = await startStack()
})
afterAll(() => s.close())

describe('ConvexHttpClient against the Convex-compatible server', () => {
  it('runs a mutation and a query as the token’s user', async () => {
    const client = new ConvexHttpClient(s.convex.url, { logger: false })
    client.setAuth(await convexToken(s, 'user_compat', 'compat'))
    const id = await client.mutation('listeningSessions:create' as never, {} as never)
    expect(typeof id).toBe('string')
    const doc = await client.query('listeningSessions:getForAudio' as never, { sessionId: id } as never)
    expect(doc).toEqual({
      _id: id,
      userId: 'user_compat',
      status: 'recording',
      audioUrl: null,
      audioContentType: null,
      audioPathname: null,
      audioSizeBytes: null,
      durationMs: null,
    })
  })

  it('another user gets null, as the deployed function answers', async () => {
    const owner = new ConvexHttpClient(s.convex.url, { logger: false })
    owner.setAuth(await convexToken(s, 'user_owner', 'compat'))
    const id = await owner.mutation('listeningSessions:create' as never, {} as never)
    const other = new ConvexHttpClient(s.convex.url, { logger: false })
    other.setAuth(await convexToken(s, 'user_other', 'compat'))
    expect(await other.query('listeningSessions:getForAudio' as never, { sessionId: id } as never)).toBeNull()
  })

  it('internal and unknown functions are not callable', async () => {
    const client = new ConvexHttpClient(s.convex.url, { logger: false })
    client.setAuth(await convexToken(s, 'user_compat', 'compat'))
    await expect(client.query('schema:default' as never, {} as never)).rejects.toThrow(/Could not find public function/)
  })

  it('a ConvexError arrives with its data', async () => {
    const client = new ConvexHttpClient(s.convex.url, { logger: false })
    client.setAuth(await convexToken(s, 'user_compat', 'compat'))
    const id = await client.mutation('listeningSessions:create' as never, {} as never)
    // Signed as the route signs it (only the route can attach: attach-guard.spec.ts).
    const attach = signAttach(s.convex.env.SESSION_AUDIO_CONVEX_SECRET, {
      sessionId: id,
      audioUrl: `${s.blob.url}/listening-sessions/${id}/a.wav`,
      pathname: `listening-sessions/${id}/a.wav`,
      contentType: 'audio/wav',
      sizeBytes: 10,
      durationMs: 5,
    })
    await client.mutation('listeningSessions:attachAudio' as never, attach as never)
    // The same blob again is done already (idempotent); another blob is the conflict.
    const other = signAttach(s.convex.env.SESSION_AUDIO_CONVEX_SECRET, {
      sessionId: id,
      audioUrl: `${s.blob.url}/listening-sessions/${id}/b.wav`,
      pathname: `listening-sessions/${id}/b.wav`,
      contentType: 'audio/wav',
      sizeBytes: 10,
      durationMs: 5,
    })
    const err = await client.mutation('listeningSessions:attachAudio' as never, other as never).catch((e) => e)
    expect(err.data).toEqual({ code: 'invalid_session_state', status: 'transcribing' })
  })

  it('attachAudio, even validly signed, refuses audio that is not under the session’s own prefix', async () => {
    const client = new ConvexHttpClient(s.convex.url, { logger: false })
    client.setAuth(await convexToken(s, 'user_compat', 'compat'))
    const id: string = await client.mutation('listeningSessions:create' as never, {} as never)
    const other: string = await client.mutation('listeningSessions:create' as never, {} as never)
    const host = s.blob.url // the store the deployment is configured with (SESSION_AUDIO_BLOB_HOSTS)
    const secret = s.convex.env.SESSION_AUDIO_CONVEX_SECRET
    const attempt = (pathname: string, audioUrl = `${host}/${pathname}`) =>
      client
        .mutation(
          'listeningSessions:attachAudio' as never,
          signAttach(secret, {
            sessionId: id,
            audioUrl,
            pathname,
            contentType: 'audio/wav',
            sizeBytes: 10,
            durationMs: 5,
          }) as never,
        )
        .then(
          () => 'attached',
          (e) => e.data?.code,
        )
    const refused: [string, string?][] = [
      [`listening-sessions/${other}/a.wav`], // another session's upload
      ['a.wav'],
      [`listening-sessions/${id}/`],
      [`listening-sessions/${id}/../${other}/a.wav`],
      [`listening-sessions/${id}/sub/a.wav`],
      [`listening-sessions/${id}/a.wav`, `${host}/listening-sessions/${other}/a.wav`], // pathname and URL disagree
      [`listening-sessions/${id}/a.wav`, `${host}/listening-sessions/${id}/%2e%2e/${other}/a.wav`],
      [`listening-sessions/${id}/a.wav`, `${host.replace('://', '://user:pw@')}/listening-sessions/${id}/a.wav`],
      [`listening-sessions/${id}/a.wav`, 'not a url'],
      [`listening-sessions/${id}/a.wav`, `javascript:/listening-sessions/${id}/a.wav`],
    ]
    for (const [pathname, url] of refused)
      expect([pathname, url, await attempt(pathname, url)]).toEqual([pathname, url, 'invalid_audio_url'])
    expect((await s.convex.getSession(id)).status).toBe('recording')
    expect(await attempt(`listening-sessions/${id}/take-1.wav`)).toBe('attached')
  })

  it('a function error surfaces as the client’s Error with the server message', async () => {
    const client = new ConvexHttpClient(s.convex.url, { logger: false })
    client.setAuth(await convexToken(s, 'user_compat', 'compat'))
    await expect(client.query('nope:missing' as never, {} as never)).rejects.toThrow(/Could not find public function/)
  })

  it('a token Convex cannot verify is refused with HTTP 401 before any function runs', async () => {
    const client = new ConvexHttpClient(s.convex.url, { logger: false })
    client.setAuth(await s.clerk.sessionToken({ sub: 'user_compat' })) // a session token: aud is not "convex"
    const before = await s.convex.countSessions()
    await expect(client.mutation('listeningSessions:create' as never, {} as never)).rejects.toThrow(/Unauthenticated/)
    expect(await s.convex.countSessions()).toBe(before)
  })

  it('the addon sends the same request shape as ConvexHttpClient', async () => {
    const client = new ConvexHttpClient(s.convex.url, { logger: false })
    client.setAuth(await convexToken(s, 'user_alice', 'compat'))
    const id = await s.session('user_alice')
    await client.query('listeningSessions:getForAudio' as never, { sessionId: id } as never)
    const fromJs = s.convex.received.at(-1)!
    const res = await s.get(id, { token: await s.clerk.sessionToken({ sub: 'user_alice' }) })
    expect(res.status).toBe(200)
    await res.arrayBuffer()
    const fromRust = s.convex.received.at(-1)!
    expect(fromRust.kind).toBe(fromJs.kind)
    expect(fromRust.body).toEqual(fromJs.body) // {path, format: "convex_encoded_json", args: [{sessionId}]}
    expect(fromRust.headers['content-type']).toBe(fromJs.headers['content-type'])
    expect(fromRust.headers['convex-client']).toMatch(/^npm-\d+\.\d+\.\d+$/)
    expect(fromJs.headers['convex-client']).toMatch(/^npm-/)
    expect(fromRust.headers.authorization).toMatch(/^Bearer ey/)
  })
})
