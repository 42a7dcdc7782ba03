// Every refusal on the way in: bad tokens, untrusted hosts, redirects, misconfiguration.
import fs from 'node:fs'
import path from 'node:path'
import { SignJWT, generateKeyPair } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startAudioServer } from '../stack/audio-server.mjs'
import { createAudioHandlers, handleAudioGet, handleAudioPost } from '../index.js'
import { envKeys, optionNames } from '../binding.js'
import { errorOf, startStack, type Handlers, type Stack } from './helpers'

let s: Stack
let sessionId: string
let outsider: Awaited<ReturnType<typeof startAudioServer>> // a loopback server nobody trusts

beforeAll(async () => {
  s = await startStack()
  sessionId = await s.session('user_alice')
  outsider = await startAudioServer({ root: s.root })
})
afterAll(async () => {
  await outsider.close()
  await s.close()
})

const b64 = (v: object) => Buffer.from(JSON.stringify(v)).toString('base64url')

describe('session tokens', () => {
  const now = () => Math.floor(Date.now() / 1000)
  const cases: [string, () => Promise<string | undefined>, string][] = [
    ['no token', async () => undefined, 'token_missing'],
    ['garbage', async () => 'not.a.jwt', 'token_invalid'],
    ['expired', () => s.clerk.sessionToken({ claims: { exp: now() - 60 } }), 'token_expired'],
    ['not yet valid', () => s.clerk.sessionToken({ claims: { nbf: now() + 120 } }), 'token_not_active_yet'],
    ['issued in the future', () => s.clerk.sessionToken({ claims: { iat: now() + 120 } }), 'token_iat_in_the_future'],
    [
      'signed by another key with our kid',
      async () => s.clerk.sessionToken({ key: (await generateKeyPair('RS256')).privateKey }),
      'token_invalid_signature',
    ],
    [
      'tampered payload',
      async () => {
        const [h, , sig] = (await s.clerk.sessionToken()).split('.')
        return `${h}.${b64({ sub: 'user_alice', sid: 'sess_x', exp: now() + 60 })}.${sig}`
      },
      'token_invalid_signature',
    ],
    [
      'alg none',
      async () => {
        const [, p] = (await s.clerk.sessionToken()).split('.')
        return `${b64({ alg: 'none', typ: 'JWT', kid: s.clerk.kid })}.${p}.`
      },
      'token_invalid_algorithm',
    ],
    [
      'HS256 signed with the public key',
      () =>
        new SignJWT({ sub: 'user_alice', sid: 'sess_1', exp: now() + 60 })
          .setProtectedHeader({ alg: 'HS256', kid: s.clerk.kid, typ: 'JWT' })
          .sign(new TextEncoder().encode(s.clerk.publicKeyPem)),
      'token_invalid_algorithm',
    ],
    [
      'JWT-template token presented as a session token',
      () => s.clerk.sessionToken({ header: { cat: 'cl_B7d4PD222AAA' } }),
      'token_type_mismatch',
    ],
    ['unknown kid', () => s.clerk.sessionToken({ header: { kid: 'ins_someone_else' } }), 'jwk_kid_mismatch'],
    ['no sid claim', () => s.clerk.sessionToken({ claims: { sid: undefined } }), 'session_inactive'],
  ]
  for (const [name, make, code] of cases) {
    it(`${name} → 401 ${code}`, async () => {
      const res = await s.get(sessionId, { token: await make() })
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer /)
      const e = await errorOf(res)
      expect([e.status, e.code]).toEqual([401, code])
    })
  }

  it('wrong azp → 401 when authorized parties are set; accepted when they are not', async () => {
    const token = await s.clerk.sessionToken({ claims: { azp: 'https://evil.example' } })
    const e = await errorOf(
      await s.get(sessionId, { token, handlers: s.handlers({ authorizedParties: ['http://localhost:3000'] }) }),
    )
    expect([e.status, e.code]).toEqual([401, 'token_invalid_authorized_parties'])
    const ok = await s.get(sessionId, { token })
    expect(ok.status).toBe(200)
    await ok.arrayBuffer()
    const right = await s.clerk.sessionToken()
    const ok2 = await s.get(sessionId, {
      token: right,
      handlers: s.handlers({ authorizedParties: ['http://localhost:3000'] }),
    })
    expect(ok2.status).toBe(200)
    await ok2.arrayBuffer()
  })

  it('a session Clerk no longer knows → 401 session_inactive', async () => {
    const token = await s.clerk.sessionToken({ sub: 'user_alice', sid: 'sess_revoked' })
    s.clerk.sessions.get('sess_revoked')!.status = 'revoked'
    const e = await errorOf(await s.get(sessionId, { token, handlers: s.handlers({ lookupTtlMs: 0 }) }))
    expect([e.status, e.code]).toEqual([401, 'session_inactive'])
  })

  it('CLERK_JWT_KEY verifies without calling the JWKS endpoint', async () => {
    const before = s.clerk.calls.jwks
    const token = await s.clerk.sessionToken()
    const res = await s.get(sessionId, { token, handlers: s.handlers({ clerkJwtKey: s.clerk.publicKeyPem }) })
    expect(res.status).toBe(200)
    await res.arrayBuffer()
    expect(s.clerk.calls.jwks).toBe(before)
    const forged = await s.clerk.sessionToken({ key: (await generateKeyPair('RS256')).privateKey })
    const e = await errorOf(
      await s.get(sessionId, { token: forged, handlers: s.handlers({ clerkJwtKey: s.clerk.publicKeyPem }) }),
    )
    expect(e.code).toBe('token_invalid_signature')
  })

  it('a rotated signing key is picked up by refetching the JWKS; forged kids cannot force a refetch storm', async () => {
    const handlers = s.handlers() // a fresh handler: an empty key cache
    const before = s.clerk.calls.jwks
    const first = await s.get(sessionId, { token: await s.clerk.sessionToken(), handlers })
    expect(first.status).toBe(200)
    await first.arrayBuffer()
    expect(s.clerk.calls.jwks - before).toBe(1)
    // Unknown kids right after a fetch: refused without asking Clerk again.
    for (let i = 0; i < 10; i++) {
      const forged = await s.clerk.sessionToken({ header: { kid: `ins_forged_${i}` } })
      expect((await errorOf(await s.get(sessionId, { token: forged, handlers }))).code).toBe('jwk_kid_mismatch')
    }
    expect(s.clerk.calls.jwks - before).toBe(1)
    await s.clerk.rotate()
    await new Promise((r) => setTimeout(r, 5_100)) // the refetch floor
    const rotated = await s.get(sessionId, { token: await s.clerk.sessionToken(), handlers })
    expect(rotated.status).toBe(200)
    await rotated.arrayBuffer()
    expect(s.clerk.calls.jwks - before).toBe(2)
  })

  it('a wrong CLERK_SECRET_KEY is 503 config_invalid, not 401', async () => {
    const e = await errorOf(
      await s.get(sessionId, {
        token: await s.clerk.sessionToken(),
        handlers: s.handlers({ clerkSecretKey: 'sk_wrong' }),
      }),
    )
    expect([e.status, e.code]).toEqual([503, 'config_invalid'])
    expect(e.message).toMatch(/CLERK_SECRET_KEY/)
  })

  it('Clerk unreachable is 502 auth_provider_unavailable', async () => {
    const e = await errorOf(
      await s.get(sessionId, {
        token: await s.clerk.sessionToken(),
        handlers: s.handlers({ clerkApiUrl: 'http://127.0.0.1:9' }),
      }),
    )
    expect([e.status, e.code]).toEqual([502, 'auth_provider_unavailable'])
  })
})

describe('trusted-host policy (SSRF)', () => {
  let alice: string
  beforeAll(async () => {
    alice = await s.clerk.sessionToken()
  })

  async function refused(audioUrl: string, handlers?: Handlers) {
    const before = outsider.connections
    const e = await errorOf(await s.get(await s.session('user_alice', audioUrl), { token: alice, handlers }))
    expect([e.status, e.code]).toEqual([502, 'untrusted_audio_host'])
    expect(e.message).not.toContain(audioUrl)
    expect(outsider.connections).toBe(before)
  }

  for (const url of [
    'https://evil.example/a.wav',
    'https://10.0.0.1/a.wav',
    'https://169.254.169.254/latest/meta-data/',
    'https://[::1]/a.wav',
    'https://2130706433/a.wav',
    'ftp://abc.public.blob.vercel-storage.com/a.wav',
    'https://user:pw@abc.public.blob.vercel-storage.com/a.wav',
    'https://abc.public.blob.vercel-storage.com:8443/a.wav',
    'not a url',
  ]) {
    it(`refuses ${url}`, () => refused(url, s.handlers({ trustedHosts: undefined })))
  }

  it("a session pointed at another session's audio on a trusted host is 502, with no request made", async () => {
    // A handler of its own: no other test's Clerk or Convex hiccup (and breaker) reaches it.
    const handlers = s.handlers({ lookupTtlMs: 0 })
    const victim = await s.session('user_bob') // …/listening-sessions/<victim>/audio/tone.wav
    const stolen = (await s.convex.getSession(victim)).audioUrl as string
    const attacker = await s.session('user_alice', stolen) // alice's session, bob's blob
    for (const audioUrl of [
      stolen,
      stolen.replace(`/listening-sessions/${victim}/`, `/listening-sessions/${attacker}/../${victim}/`),
      stolen.replace(`/listening-sessions/${victim}/`, `/listening-sessions/${attacker}/%2e%2e/${victim}/`),
      stolen.replace(`/listening-sessions/${victim}/`, `/listening-sessions/${attacker}%2F..%2F${victim}/`),
      `${s.audio.url}/audio/tone.wav`, // a trusted host, but no session's prefix at all
    ]) {
      await s.convex.run((ctx: any) => ctx.db.patch(attacker, { audioUrl }))
      const before = s.audio.requests.length
      const e = await errorOf(await s.get(attacker, { token: alice, handlers }))
      expect([audioUrl, e.status, e.code]).toEqual([audioUrl, 502, 'untrusted_audio_host'])
      expect(s.audio.requests.length).toBe(before)
    }
    // Audio stored by older code under other paths: the deployment can turn the check off.
    const legacy = s.handlers({ lookupTtlMs: 0, requireSessionPath: false })
    const res = await s.get(attacker, { token: alice, handlers: legacy })
    expect(res.status).toBe(200)
    await res.arrayBuffer()
  })

  it('refuses a loopback server that is not on the list, with zero connections to it', () =>
    refused(`${outsider.url}/audio/tone.wav`))

  it('by default (switch off) refuses even a listed loopback host:port', () =>
    refused(
      `${outsider.url}/audio/tone.wav`,
      s.handlers({ trustedHosts: [outsider.host], allowLoopbackUpstream: false }),
    ))

  it('an allow-listed name that resolves to loopback is refused at connect time', () =>
    // Passes the URL check (https, listed host:port); the guarded resolver sees 127.0.0.1.
    refused(
      `https://localhost:${outsider.port}/audio/tone.wav`,
      s.handlers({ trustedHosts: [`localhost:${outsider.port}`], allowLoopbackUpstream: false }),
    ))

  it('a redirect to a loopback server that is not listed is refused before connecting', () =>
    refused(`${s.audio.url}/redirect?to=${encodeURIComponent(`${outsider.url}/audio/tone.wav`)}`))

  it('a redirect to the metadata address is refused', () =>
    refused(`${s.audio.url}/redirect?to=${encodeURIComponent('http://169.254.169.254/latest/meta-data/')}`))

  it('a redirect within the trusted host is followed', async () => {
    const id = await s.session('user_alice', `${s.audio.url}/{session}/redirect?to=/audio/tone.wav`)
    const res = await s.get(id, { token: alice })
    expect(res.status).toBe(200)
    expect(Buffer.from(await res.arrayBuffer()).equals(s.wav)).toBe(true)
  })

  it('more than 3 redirects is 502 upstream_failed', async () => {
    let url = `${s.audio.url}/audio/tone.wav`
    for (let i = 0; i < 4; i++) url = `${s.audio.url}/redirect?to=${encodeURIComponent(url)}`
    url = url.replace('/redirect', '/{session}/redirect') // the stored URL is the session's; its hops need not be
    const e = await errorOf(await s.get(await s.session('user_alice', url), { token: alice }))
    expect([e.status, e.code]).toEqual([502, 'upstream_failed'])
  })

  it('HTTP(S)_PROXY in the environment is ignored: no request goes through it', async () => {
    const saved = { ...process.env }
    try {
      for (const k of ['HTTP_PROXY', 'HTTPS_PROXY', 'ALL_PROXY', 'http_proxy', 'https_proxy', 'all_proxy']) {
        process.env[k] = outsider.url
      }
      const before = outsider.connections
      const res = await s.get(sessionId, { token: alice, handlers: s.handlers() })
      expect(res.status).toBe(200)
      await res.arrayBuffer()
      expect(outsider.connections).toBe(before)
    } finally {
      process.env = saved
    }
  })

  it('localhost:PORT works with the loopback switch when listed', async () => {
    const id = await s.session('user_alice', `http://localhost:${s.audio.port}/{session}/audio/tone.wav`)
    const res = await s.get(id, { token: alice, handlers: s.handlers({ trustedHosts: [`localhost:${s.audio.port}`] }) })
    expect(res.status).toBe(200)
    await res.arrayBuffer()
  })
})

describe('configuration', () => {
  const request = (token?: string) =>
    new Request('http://app.local/api/listening-sessions/x/audio', {
      headers: token ? { authorization: `Bearer ${token}` } : {},
    })

  it('missing NEXT_PUBLIC_CONVEX_URL answers 503 config_missing naming it, and never throws', async () => {
    const saved = { ...process.env }
    try {
      delete process.env.NEXT_PUBLIC_CONVEX_URL
      process.env.CLERK_SECRET_KEY = 'sk_test_x'
      const missing = createAudioHandlers()
      const e = await errorOf(await missing.GET(request(), { params: Promise.resolve({ sessionId: 'x' }) }))
      expect([e.status, e.code]).toEqual([503, 'config_missing'])
      expect(e.message).toMatch(/NEXT_PUBLIC_CONVEX_URL/)
      process.env.NEXT_PUBLIC_CONVEX_URL = 'https://x.convex.site'
      const bad = await errorOf(await createAudioHandlers().GET(request(), { params: { sessionId: 'x' } }))
      expect([bad.status, bad.code]).toEqual([503, 'config_invalid'])
      // Handlers read the environment once, when created: the first still answers as it did.
      expect((await errorOf(await missing.GET(request(), { params: { sessionId: 'x' } }))).code).toBe('config_missing')
    } finally {
      process.env = saved
    }
  })

  it('environment variables are read when no options are given, at the first call', async () => {
    const saved = { ...process.env }
    try {
      Object.assign(process.env, {
        NEXT_PUBLIC_CONVEX_URL: s.convex.url,
        CLERK_SECRET_KEY: s.clerk.secretKey,
        CLERK_API_URL: s.clerk.url,
        SESSION_AUDIO_TRUSTED_HOSTS: s.audio.host,
        SESSION_AUDIO_ALLOW_LOOPBACK_UPSTREAM: '1',
      })
      const token = await s.clerk.sessionToken()
      const res = await handleAudioGet(request(token), { params: Promise.resolve({ sessionId }) })
      expect(res.status).toBe(200)
      await res.arrayBuffer()
      // Bound then: a later change of the environment does not reach this handler.
      delete process.env.NEXT_PUBLIC_CONVEX_URL
      const again = await handleAudioGet(request(token), { params: Promise.resolve({ sessionId }) })
      expect(again.status).toBe(200)
      await again.arrayBuffer()
    } finally {
      process.env = saved
    }
  })

  it('handleAudioGet builds one handler per options object, at its first call with it', async () => {
    const saved = { ...process.env }
    try {
      const options = s.options({ convexUrl: undefined }) // the URL comes from the environment
      delete process.env.NEXT_PUBLIC_CONVEX_URL
      const token = await s.clerk.sessionToken()
      const context = { params: { sessionId } }
      const before = await errorOf(await handleAudioGet(request(token), context, options))
      expect([before.status, before.code]).toEqual([503, 'config_missing'])
      process.env.NEXT_PUBLIC_CONVEX_URL = s.convex.url
      // The same object is the same handler (POST shares it), built before the change…
      expect((await errorOf(await handleAudioGet(request(token), context, options))).code).toBe('config_missing')
      const post = new Request(request(token), { method: 'POST', body: 'x' })
      expect((await errorOf(await handleAudioPost(post, context, options))).code).toBe('config_missing')
      // …and a new object gets a handler of its own, with the environment as it is now.
      const res = await handleAudioGet(request(token), context, { ...options })
      expect(res.status).toBe(200)
      await res.arrayBuffer()
    } finally {
      process.env = saved
    }
  })

  it('missing CLERK_SECRET_KEY is 503 config_missing; a broken CLERK_JWT_KEY is 503 config_invalid', async () => {
    const e = await errorOf(
      await createAudioHandlers({ convexUrl: s.convex.url }).GET(request(), { params: { sessionId } }),
    )
    expect([e.status, e.code]).toEqual([503, 'config_missing'])
    const bad = await errorOf(
      await createAudioHandlers(
        s.options({ clerkJwtKey: '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----' }),
      ).GET(request(), { params: { sessionId } }),
    )
    expect([bad.status, bad.code]).toEqual([503, 'config_invalid'])
    expect(bad.message).toMatch(/CLERK_JWT_KEY/)
  })

  it('an unknown option name throws at setup, where the developer sees it', () => {
    expect(() => createAudioHandlers({ convexURL: 'x' } as never)).toThrow(/unknown option "convexURL"/)
  })

  it('an option of the wrong type throws a TypeError at setup, naming the option', () => {
    expect(() => createAudioHandlers({ lookupTtlMs: 'soon' } as never)).toThrow(/lookupTtlMs/)
    expect(() => createAudioHandlers({ trustedHosts: 'a.example' } as never)).toThrow(/trustedHosts/)
    expect(() => createAudioHandlers({ allowLoopbackUpstream: 1 } as never)).toThrow(/allowLoopbackUpstream/)
  })

  it('every option declared in Rust is in the README table, with the variable it overrides', () => {
    const readme = fs.readFileSync(path.join(__dirname, '..', 'README.md'), 'utf8')
    const names = optionNames()
    expect(names.length).toBeGreaterThan(20)
    for (const name of names) expect(readme, name).toMatch(new RegExp(`\\| \`${name}\` \\| \`[A-Z_]+`))
    // and every variable the handlers read is one the README names
    for (const key of envKeys()) expect(readme, key).toContain(`\`${key}`)
  })
})
