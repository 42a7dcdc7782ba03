// Only the route can attach audio (issue #17 §3): the template's public `attachAudio` takes only
// arguments the route signed with SESSION_AUDIO_CONVEX_SECRET, and still checks the URL's host,
// scheme, type, size and duration itself. Proven with the unmodified `ConvexHttpClient` against the
// template run by the local stack, and through the real addon.
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { ConvexHttpClient } from 'convex/browser'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { attachMessage, attachSignatureValid, NO_SECRET } from '../examples/convex/listeningSessions'
import { errorOf, signAttach, startStack, type AttachFields, type Stack, convexToken } from './helpers'

let s: Stack
let secret: string
beforeAll(async () => {
  s = await startStack()
  secret = s.convex.env.SESSION_AUDIO_CONVEX_SECRET
})
afterAll(() => s.close())

async function clientFor(sub: string) {
  const client = new ConvexHttpClient(s.convex.url, { logger: false })
  client.setAuth(await convexToken(s, sub, 'guard'))
  return client
}

/** The mutation's answer: 'attached', or the ConvexError's data (anything else fails the test). */
const attach = (client: ConvexHttpClient, args: object) =>
  client.mutation('listeningSessions:attachAudio' as never, args as never).then(
    () => 'attached' as const,
    (e) => {
      expect(e.constructor.name).toBe('ConvexError')
      return e.data as { code: string; reason?: string }
    },
  )

describe('known-answer vectors: the route, the template and the tests encode alike', () => {
  const file = JSON.parse(fs.readFileSync(path.join(__dirname, 'fixtures', 'attach-signature.json'), 'utf8'))

  it('the template builds the same message and accepts exactly the vector’s signature', async () => {
    expect(file.vectors.length).toBeGreaterThanOrEqual(2)
    for (const { args, message, signature } of file.vectors) {
      expect(new TextDecoder().decode(attachMessage(args)!)).toBe(message)
      expect(await attachSignatureValid(file.secret, args, signature)).toBe(true)
      const flipped = signature.slice(0, -1) + (signature.endsWith('0') ? '1' : '0')
      expect(await attachSignatureValid(file.secret, args, flipped)).toBe(false)
      expect(await attachSignatureValid(`${file.secret}x`, args, signature)).toBe(false)
      const { expiresAt, ...fields } = args
      expect(signAttach(file.secret, fields, expiresAt).signature).toBe(signature)
    }
  })

  it('values that cannot be encoded one way only have no message', () => {
    const base = file.vectors[0].args
    for (const bad of [
      { sizeBytes: 1.5 },
      { durationMs: -1 },
      { expiresAt: 2 ** 53 },
      { audioUrl: 'https://h/\ud800' },
    ])
      expect(attachMessage({ ...base, ...bad })).toBeNull()
  })
})

describe('attachAudio called directly by a signed-in user', () => {
  let client: ConvexHttpClient
  let id: string
  let good: AttachFields
  const STORE = 'guardstore'

  beforeAll(async () => {
    s.convex.env.SESSION_AUDIO_BLOB_STORE_ID = `store_${STORE.toUpperCase()}`
    client = await clientFor('user_mallory')
    id = await client.mutation('listeningSessions:create' as never, {} as never)
    good = {
      sessionId: id,
      audioUrl: `https://${STORE}.private.blob.vercel-storage.com/listening-sessions/${id}/take-1.webm`,
      pathname: `listening-sessions/${id}/take-1.webm`,
      contentType: 'audio/webm;codecs=opus',
      sizeBytes: 160_044,
      durationMs: 5_000,
    }
  })
  afterAll(() => {
    delete s.convex.env.SESSION_AUDIO_BLOB_STORE_ID
  })

  const untouched = async () => {
    const doc = await s.convex.getSession(id)
    expect([doc.status, doc.audioUrl, doc.audioContentType, doc.durationMs]).toEqual([
      'recording',
      undefined,
      undefined,
      undefined,
    ])
  }

  it('the reproduction from the issue (evil host, text/html, 1 ms, no signature) changes nothing', async () => {
    const evil = {
      sessionId: id,
      audioUrl: `https://evil.example/listening-sessions/${id}/x.webm`,
      pathname: `listening-sessions/${id}/x.webm`,
      contentType: 'text/html',
      sizeBytes: 10,
      durationMs: 1,
    }
    expect(await attach(client, evil)).toEqual({ code: 'invalid_attach_signature', reason: 'missing' })
    expect(await attach(client, { ...evil, expiresAt: Date.now() + 60_000 })).toMatchObject({
      code: 'invalid_attach_signature',
    })
    await untouched()
  })

  it('no, a wrong, a foreign-secret or a reused signature is refused', async () => {
    const fresh = Date.now() + 60_000
    const cases: [string, object, string][] = [
      ['none', { ...good }, 'missing'],
      ['expiry only', { ...good, expiresAt: fresh }, 'missing'],
      ['random', { ...good, expiresAt: fresh, signature: crypto.randomBytes(32).toString('hex') }, 'mismatch'],
      ['not hex', { ...good, expiresAt: fresh, signature: 'z'.repeat(64) }, 'mismatch'],
      ['empty', { ...good, expiresAt: fresh, signature: '' }, 'mismatch'],
      ['another secret', signAttach(crypto.randomBytes(32).toString('hex'), good), 'mismatch'],
      [
        'uppercase hex',
        (() => {
          const a = signAttach(secret, good)
          return { ...a, signature: a.signature.toUpperCase() }
        })(),
        'mismatch',
      ],
    ]
    for (const [name, args, reason] of cases)
      expect([name, await attach(client, args)]).toEqual([name, { code: 'invalid_attach_signature', reason }])
    await untouched()
  })

  it("checkAttachSetup (doctor's probe) is no oracle for attaches: it vouches only for a probe's own signature", async () => {
    const { probeMessage, sign } = await import('../bin/attach-sign.mjs')
    const origin = `https://${STORE}.private.blob.vercel-storage.com`
    const ask = (c: ConvexHttpClient, args: object) =>
      c.query('listeningSessions:checkAttachSetup' as never, args as never) as Promise<unknown>
    const anonymous = new ConvexHttpClient(s.convex.url, { logger: false })
    // The probe doctor sends (no user needed): the secret matches, and the store is allowed or not.
    expect(await ask(anonymous, { blobOrigin: origin, signature: sign(secret, probeMessage(origin)) })).toEqual({
      secret: 'match',
      store: 'match',
    })
    const evil = 'https://evil.example'
    expect(await ask(anonymous, { blobOrigin: evil, signature: sign(secret, probeMessage(evil)) })).toEqual({
      secret: 'match',
      store: 'mismatch',
    })
    // An attach's valid signature is no probe's, and a probe's is no attach's.
    const signed = signAttach(secret, good)
    expect(await ask(client, { blobOrigin: origin, signature: signed.signature })).toEqual({ secret: 'mismatch' })
    expect(await attach(client, { ...signed, signature: sign(secret, probeMessage(origin)) })).toEqual({
      code: 'invalid_attach_signature',
      reason: 'mismatch',
    })
    // Without the secret it says nothing about the store.
    const random = crypto.randomBytes(32).toString('hex')
    expect(await ask(client, { blobOrigin: origin, signature: random })).toEqual({ secret: 'mismatch' })
    // An origin no store has (over 2 KiB), even correctly signed, or a signature that is not 64 hex
    // digits, is refused before any MAC is computed.
    const huge = `https://${'a'.repeat(4096)}.example`
    expect(await ask(anonymous, { blobOrigin: huge, signature: sign(secret, probeMessage(huge)) })).toEqual({
      secret: 'mismatch',
    })
    const upper = sign(secret, probeMessage(origin)).toUpperCase()
    expect(await ask(anonymous, { blobOrigin: origin, signature: upper })).toEqual({ secret: 'mismatch' })
    await untouched()
  })

  it('a valid signature for other arguments does not carry over to any changed field', async () => {
    const signed = signAttach(secret, good)
    const swaps: [string, unknown][] = [
      ['sessionId', (await client.mutation('listeningSessions:create' as never, {} as never)) as string],
      ['audioUrl', `https://evil.example/listening-sessions/${id}/take-1.webm`],
      ['pathname', `listening-sessions/${id}/take-2.webm`],
      ['contentType', 'text/html'],
      ['sizeBytes', 5 * 1024 ** 3 + 1],
      ['durationMs', 1],
      ['expiresAt', signed.expiresAt + 1],
    ]
    for (const [field, value] of swaps)
      expect([field, await attach(client, { ...signed, [field]: value })]).toEqual([
        field,
        { code: 'invalid_attach_signature', reason: 'mismatch' },
      ])
    await untouched()
  })

  it('an expired signature, or one that expires too far ahead to be the route’s, is refused', async () => {
    expect(await attach(client, signAttach(secret, good, Date.now() - 1_000))).toEqual({
      code: 'invalid_attach_signature',
      reason: 'expired',
    })
    expect(await attach(client, signAttach(secret, good, Date.now() + 60 * 60 * 1000))).toEqual({
      code: 'invalid_attach_signature',
      reason: 'expired',
    })
    await untouched()
  })

  it('even validly signed, the template checks host, scheme, path, type, size and duration itself', async () => {
    const url = (origin: string, name = 'take-1.webm') => ({
      audioUrl: `${origin}/listening-sessions/${id}/${name}`,
      pathname: `listening-sessions/${id}/${name}`,
    })
    const cases: [string, Partial<AttachFields>, string][] = [
      ['evil host', url('https://evil.example'), 'invalid_audio_url'],
      ['another store', url('https://otherstore.private.blob.vercel-storage.com'), 'invalid_audio_url'],
      ['http on the store’s host', url(`http://${STORE}.private.blob.vercel-storage.com`), 'invalid_audio_url'],
      [
        'the store’s host on another port',
        url(`https://${STORE}.private.blob.vercel-storage.com:8443`),
        'invalid_audio_url',
      ],
      ['a query string', { audioUrl: `${good.audioUrl}?download=1` }, 'invalid_audio_url'],
      ['another session’s path', { pathname: 'listening-sessions/other/take-1.webm' }, 'invalid_audio_url'],
      ['text/html', { contentType: 'text/html' }, 'invalid_audio'],
      ['audio/midi', { contentType: 'audio/midi' }, 'invalid_audio'],
      ['audio/webm with a smuggled parameter', { contentType: 'audio/webm;x="<b>"' }, 'invalid_audio'],
      ['size 0', { sizeBytes: 0 }, 'invalid_audio'],
      ['size -1', { sizeBytes: -1 }, 'invalid_attach_signature'], // no canonical encoding
      ['huge size', { sizeBytes: 6 * 1024 ** 3 }, 'invalid_audio'],
      ['duration 0', { durationMs: 0 }, 'invalid_audio'],
      ['25 hours', { durationMs: 25 * 60 * 60 * 1000 }, 'invalid_audio'],
      ['a fraction of a ms', { durationMs: 1.5 }, 'invalid_attach_signature'],
    ]
    for (const [name, change, code] of cases) {
      const got = await attach(client, signAttach(secret, { ...good, ...change }))
      expect([name, got === 'attached' ? got : got.code]).toEqual([name, code])
    }
    // The stack's own loopback origin is allowed only because SESSION_AUDIO_BLOB_HOSTS lists it;
    // a loopback origin it does not list is refused like any other.
    const otherLoopback = `http://127.0.0.1:${s.blob.port === 1 ? 2 : 1}`
    expect(await attach(client, signAttach(secret, { ...good, ...url(otherLoopback) }))).toEqual({
      code: 'invalid_audio_url',
    })
    await untouched()
  })

  it('someone else’s session, validly signed, is not found', async () => {
    const owner = await clientFor('user_owner_guard')
    const theirs: string = await owner.mutation('listeningSessions:create' as never, {} as never)
    const args = { ...good, sessionId: theirs, ...{ pathname: `listening-sessions/${theirs}/a.webm` } }
    args.audioUrl = `https://${STORE}.private.blob.vercel-storage.com/${args.pathname}`
    expect(await attach(client, signAttach(secret, args))).toEqual({ code: 'session_not_found' })
    expect((await s.convex.getSession(theirs)).status).toBe('recording')
  })

  it('a deployment without a usable secret answers every call as a wrong signature: a caller cannot tell', async () => {
    const missing = { code: 'invalid_attach_signature', reason: 'missing' }
    const mismatch = { code: 'invalid_attach_signature', reason: 'mismatch' }
    const calls: [string, object][] = [
      ['none', { ...good }],
      ['random', { ...good, expiresAt: Date.now() + 60_000, signature: crypto.randomBytes(32).toString('hex') }],
      ['another secret', signAttach(crypto.randomBytes(32).toString('hex'), good)],
      // The key attachAudio verifies with when it has none: its MAC checks out, and counts for nothing.
      ['the stand-in key', signAttach(NO_SECRET, good)],
    ]
    const answers = async (more: [string, object][] = []) => {
      const out: [string, unknown][] = []
      for (const [name, args] of [...calls, ...more]) out.push([name, await attach(client, args)])
      return out
    }
    // What the configured deployment answers these calls.
    const configured = await answers()
    expect(configured.map(([, a]) => a)).toEqual([missing, mismatch, mismatch, mismatch])
    // Without the secret, or with one too short to use: the same answers, also to the route's own
    // signature (the value the route holds), and still nothing attached.
    for (const [name, value] of [
      ['unset', undefined],
      ['31 characters', secret.slice(0, 31)],
    ] as const) {
      try {
        if (value === undefined) delete s.convex.env.SESSION_AUDIO_CONVEX_SECRET
        else s.convex.env.SESSION_AUDIO_CONVEX_SECRET = value
        const route = signAttach(value ?? secret, good)
        expect([name, await answers([['the route', route]])]).toEqual([name, [...configured, ['the route', mismatch]]])
      } finally {
        s.convex.env.SESSION_AUDIO_CONVEX_SECRET = secret
      }
    }
    await untouched()
  })

  it('a deployment without a store attaches nothing; only a caller holding the secret learns why', async () => {
    for (const key of ['SESSION_AUDIO_BLOB_STORE_ID', 'SESSION_AUDIO_BLOB_HOSTS']) {
      const others = { ...s.convex.env }
      try {
        delete s.convex.env[key]
        // Only the two host settings together can be missing for "no store": drop both.
        delete s.convex.env.SESSION_AUDIO_BLOB_STORE_ID
        delete s.convex.env.SESSION_AUDIO_BLOB_HOSTS
        expect([key, await attach(client, signAttach(secret, good))]).toEqual([key, { code: 'attach_not_configured' }])
        // Anyone else sees what a configured deployment would say to them.
        expect([key, await attach(client, signAttach(crypto.randomBytes(32).toString('hex'), good))]).toEqual([
          key,
          { code: 'invalid_attach_signature', reason: 'mismatch' },
        ])
        expect([key, await attach(client, { ...good })]).toEqual([
          key,
          { code: 'invalid_attach_signature', reason: 'missing' },
        ])
      } finally {
        Object.assign(s.convex.env, others)
      }
    }
    // A malformed host entry is a configuration error too, not a wider allowance.
    s.convex.env.SESSION_AUDIO_BLOB_HOSTS = `${s.blob.url},http://evil.example`
    try {
      expect(await attach(client, signAttach(secret, good))).toEqual({ code: 'attach_not_configured' })
    } finally {
      s.convex.env.SESSION_AUDIO_BLOB_HOSTS = s.blob.url
    }
    await untouched()
  })

  it('the same call, validly signed and within bounds, attaches (so the refusals above are real)', async () => {
    expect(await attach(client, signAttach(secret, good))).toBe('attached')
    const doc = await s.convex.getSession(id)
    expect([doc.status, doc.audioUrl, doc.audioContentType]).toEqual(['transcribing', good.audioUrl, good.contentType])
  })

  it('attaching the same blob again answers success (idempotent: a retry after a lost answer); another blob is a conflict', async () => {
    expect(await attach(client, signAttach(secret, good))).toBe('attached')
    const other = {
      ...good,
      audioUrl: good.audioUrl.replace(/\.(\w+)$/, '-2.$1'),
      pathname: good.pathname.replace(/\.(\w+)$/, '-2.$1'),
    }
    expect(await attach(client, signAttach(secret, other))).toMatchObject({ code: 'invalid_session_state' })
    expect((await s.convex.getSession(id)).audioUrl).toBe(good.audioUrl)
  })
})

describe('the route', () => {
  const wav = () => s.wav
  const meta = { 'x-content-type': 'audio/wav', 'x-duration-ms': '5000' }
  const recording = () => s.session('user_alice', null, { status: 'recording' })

  it('signs its own attach: a streamed POST attaches', async () => {
    const alice = await s.clerk.sessionToken({ sub: 'user_alice' })
    const id = await recording()
    const res = await s.post(id, wav(), { token: alice, headers: meta })
    expect(res.status).toBe(201)
    const body = await res.json()
    const doc = await s.convex.getSession(id)
    expect([doc.status, doc.audioUrl]).toEqual(['transcribing', body.audioUrl])
  })

  it('without SESSION_AUDIO_CONVEX_SECRET: uploads and client-upload events are 503 config_missing, GET works', async () => {
    const alice = await s.clerk.sessionToken({ sub: 'user_alice' })
    const handlers = s.handlers({ convexSecret: undefined })
    const id = await recording()
    const before = s.blob.list()
    const up = await errorOf(await s.post(id, wav(), { token: alice, headers: meta, handlers }))
    expect([up.status, up.code]).toEqual([503, 'config_missing'])
    expect(up.message).toMatch(/SESSION_AUDIO_CONVEX_SECRET/)
    const event = await errorOf(
      await s.post(
        id,
        JSON.stringify({
          type: 'session-audio.complete-upload',
          payload: { url: `${s.blob.url}/listening-sessions/${id}/a.wav`, durationMs: 5000 },
        }),
        { token: alice, headers: { 'content-type': 'application/json' }, handlers },
      ),
    )
    expect([event.status, event.code]).toEqual([503, 'config_missing'])
    expect(event.message).toMatch(/SESSION_AUDIO_CONVEX_SECRET/)
    expect(s.blob.list()).toEqual(before)
    expect((await s.convex.getSession(id)).status).toBe('recording')
    const ready = await s.session('user_alice')
    const res = await s.get(ready, { token: alice, handlers })
    expect(res.status).toBe(200)
    await res.arrayBuffer()
  })

  it('a secret shorter than 32 characters is 503 config_invalid, without echoing it', async () => {
    const alice = await s.clerk.sessionToken({ sub: 'user_alice' })
    const e = await errorOf(
      await s.post(await recording(), wav(), {
        token: alice,
        headers: meta,
        handlers: s.handlers({ convexSecret: 'hunter2-hunter2' }),
      }),
    )
    expect([e.status, e.code]).toEqual([503, 'config_invalid'])
    expect(e.message).toMatch(/SESSION_AUDIO_CONVEX_SECRET/)
    expect(e.message).not.toContain('hunter2')
  })

  it('a route whose secret Convex does not share: 503 attach_secret_mismatch, blob kept, session untouched, secret not echoed', async () => {
    const alice = await s.clerk.sessionToken({ sub: 'user_alice' })
    const wrong = crypto.randomBytes(32).toString('hex')
    const id = await recording()
    const before = s.blob.list()
    const e = await errorOf(
      await s.post(id, wav(), { token: alice, headers: meta, handlers: s.handlers({ convexSecret: wrong }) }),
    )
    expect([e.status, e.code, e.final]).toEqual([503, 'attach_secret_mismatch', false])
    expect(e.message).toMatch(/SESSION_AUDIO_CONVEX_SECRET must be the same value/)
    expect(e.message).not.toContain(wrong)
    expect(e.message).not.toContain(secret)
    // Kept: a rotation half done must not delete every upload made meanwhile.
    expect(s.blob.list().filter((p) => !before.includes(p))).toHaveLength(1)
    expect((await s.convex.getSession(id)).status).toBe('recording')
  })

  it('a Convex deployment without the secret: 503 attach_secret_mismatch naming it, blob kept', async () => {
    // attachAudio answers the route as it answers anyone with a wrong signature (it tells no caller
    // whether it has a secret); the route's message names the setting to compare on both sides.
    const alice = await s.clerk.sessionToken({ sub: 'user_alice' })
    const id = await recording()
    const before = s.blob.list()
    delete s.convex.env.SESSION_AUDIO_CONVEX_SECRET
    try {
      const e = await errorOf(await s.post(id, wav(), { token: alice, headers: meta }))
      expect([e.status, e.code]).toEqual([503, 'attach_secret_mismatch'])
      expect(e.message).toMatch(/SESSION_AUDIO_CONVEX_SECRET.*Convex deployment/)
    } finally {
      s.convex.env.SESSION_AUDIO_CONVEX_SECRET = secret
    }
    expect(s.blob.list().filter((p) => !before.includes(p))).toHaveLength(1)
    expect((await s.convex.getSession(id)).status).toBe('recording')
  })

  it('a Convex deployment with the secret but no store: 503 config_missing naming the store settings, blob kept', async () => {
    const alice = await s.clerk.sessionToken({ sub: 'user_alice' })
    const id = await recording()
    const before = s.blob.list()
    const saved = { ...s.convex.env }
    delete s.convex.env.SESSION_AUDIO_BLOB_STORE_ID
    delete s.convex.env.SESSION_AUDIO_BLOB_HOSTS
    try {
      const e = await errorOf(await s.post(id, wav(), { token: alice, headers: meta }))
      expect([e.status, e.code]).toEqual([503, 'config_missing'])
      expect(e.message).toMatch(/Convex deployment.*SESSION_AUDIO_BLOB_STORE_ID or SESSION_AUDIO_BLOB_HOSTS/)
    } finally {
      Object.assign(s.convex.env, saved)
    }
    expect(s.blob.list().filter((p) => !before.includes(p))).toHaveLength(1)
    expect((await s.convex.getSession(id)).status).toBe('recording')
  })
})
