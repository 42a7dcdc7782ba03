// Vercel Blob over OIDC, as Vercel sets a project up today: BLOB_STORE_ID and a short-lived OIDC
// token per request (the `x-vercel-oidc-token` header, else VERCEL_OIDC_TOKEN), no read-write token.
// First the local store is proven against the unmodified `@vercel/blob` in that mode; then the route
// and the sweep, resolving credentials in the SDK's order (explicit token, OIDC, env read-write).
import { BlobAccessError, del, head, list, put } from '@vercel/blob'
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startLocalStack } from '../stack/local.mjs'
import { sineWav } from '../stack/wav.mjs'
import { createAudioHandlers, sweepOrphanAudio } from '../index.js'
import { errorOf, startStack, type Stack, storeDated } from './helpers'

const run = promisify(execFile)
const DAY = 86_400_000
let s: Stack
let alice: string
const wav = sineWav(2)
const meta = { 'x-duration-ms': '2000', 'x-content-type': 'audio/wav' }

/** Run `fn` with these environment variables (undefined: unset), then put them back. */
async function withEnv<T>(vars: Record<string, string | undefined>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]))
  const apply = (values: Record<string, string | undefined>) => {
    for (const [k, v] of Object.entries(values)) {
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
    }
  }
  apply(vars)
  try {
    return await fn()
  } finally {
    apply(saved)
  }
}

beforeAll(async () => {
  s = await startStack()
  alice = await s.clerk.sessionToken({ sub: 'user_alice' })
  // The route must not find credentials in the test process's own environment.
  for (const k of ['VERCEL_OIDC_TOKEN', 'BLOB_STORE_ID', 'BLOB_READ_WRITE_TOKEN']) delete process.env[k]
})
afterAll(() => s.close())

const recording = () => s.session('user_alice', null, { status: 'recording' })
const authSince = (n: number) => s.blob.auth.slice(n).map((a: any) => [a.op, a.kind, a.storeId])

async function expectUntouched(id: string, blobsBefore: string[]) {
  const doc = await s.convex.getSession(id)
  expect(doc.status).toBe('recording')
  expect(doc.audioUrl).toBeUndefined()
  expect(s.blob.list()).toEqual(blobsBefore)
}

describe('@vercel/blob with OIDC against the local store', () => {
  it('put, head, list, del with VERCEL_OIDC_TOKEN + BLOB_STORE_ID: every call carries the OIDC bearer and the normalised store id', async () => {
    const oidc = s.blob.oidcToken()
    const env = {
      VERCEL_OIDC_TOKEN: oidc,
      BLOB_STORE_ID: s.blob.blobStoreIdEnv, // `store_localstore`, as `vercel env pull` writes it
      BLOB_READ_WRITE_TOKEN: undefined,
      VERCEL_BLOB_API_URL: s.blob.apiUrl,
      VERCEL_BLOB_RETRIES: '0',
    }
    await withEnv(env, async () => {
      const before = s.blob.auth.length
      const stored = await put('oidc/a.wav', Buffer.from('RIFF....WAVE'), {
        access: 'private',
        contentType: 'audio/wav',
        addRandomSuffix: true,
      })
      expect(stored.pathname).toMatch(/^oidc\/a-[\w-]+\.wav$/)
      const putCall = s.blob.puts.at(-1)!
      expect(putCall.headers.authorization).toBe(`Bearer ${oidc}`)
      expect(putCall.headers['x-vercel-blob-store-id']).toBe('localstore')
      expect(await head(stored.url)).toMatchObject({ pathname: stored.pathname, size: 12 })
      expect((await list({ prefix: 'oidc/' })).blobs.map((b) => b.pathname)).toEqual([stored.pathname])
      // A private read carries the same bearer, and no store id (the host names the store).
      expect((await fetch(stored.url)).status).toBe(403)
      const read = await fetch(stored.url, { headers: { authorization: `Bearer ${oidc}` } })
      expect(read.status).toBe(200)
      await del(stored.url)
      expect(s.blob.list()).not.toContain(stored.pathname)
      expect(authSince(before)).toEqual([
        ['put', 'oidc', 'localstore'],
        ['head', 'oidc', 'localstore'],
        ['list', 'oidc', 'localstore'],
        ['read', 'oidc', null],
        ['delete', 'oidc', 'localstore'],
      ])
    })
  })

  it('another store id is refused as Blob refuses it (BlobAccessError), and nothing is stored', async () => {
    const env = {
      VERCEL_OIDC_TOKEN: s.blob.oidcToken(),
      BLOB_STORE_ID: 'store_otherstore',
      VERCEL_BLOB_API_URL: s.blob.apiUrl,
      VERCEL_BLOB_RETRIES: '0',
    }
    const before = s.blob.list()
    await withEnv(env, async () => {
      await expect(put('oidc/b.wav', 'x', { access: 'private' })).rejects.toBeInstanceOf(BlobAccessError)
    })
    expect(s.blob.list()).toEqual(before)
  })

  it('an expired, forged or wrong-store OIDC token gets 403 forbidden in the Blob error shape on every call', async () => {
    const expired = s.blob.oidcToken({ expiresInSec: -60 })
    const live = s.blob.oidcToken()
    const forged = `${live.split('.').slice(0, 2).join('.')}.${Buffer.from('nope').toString('base64url')}`
    const cases: [string, Record<string, string>][] = [
      ['expired', { authorization: `Bearer ${expired}`, 'x-vercel-blob-store-id': 'localstore' }],
      ['forged', { authorization: `Bearer ${forged}`, 'x-vercel-blob-store-id': 'localstore' }],
      ['wrong store', { authorization: `Bearer ${live}`, 'x-vercel-blob-store-id': 'otherstore' }],
      ['no store id', { authorization: `Bearer ${live}` }],
    ]
    const before = s.blob.list()
    for (const [name, headers] of cases) {
      const res = await fetch(`${s.blob.apiUrl}/?pathname=oidc/c.wav`, {
        method: 'PUT',
        headers: { ...headers, 'x-api-version': '12', 'x-vercel-blob-access': 'private' },
        body: 'RIFF',
      })
      expect([name, res.status]).toEqual([name, 403])
      expect((await res.json()).error.code).toBe('forbidden')
      const listed = await fetch(`${s.blob.apiUrl}?prefix=`, { headers })
      expect([name, listed.status]).toEqual([name, 403])
    }
    expect(s.blob.list()).toEqual(before)
  })
})

describe('the local stack in OIDC mode', () => {
  it("startLocalStack({ blobAuth: 'oidc' }) hands out BLOB_STORE_ID and an OIDC token instead of the read-write token, and its store takes them from the SDK", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'session-audio-oidc-'))
    const stack = await startLocalStack({ dir, blobAuth: 'oidc' })
    try {
      expect(stack.env.BLOB_READ_WRITE_TOKEN).toBeUndefined()
      expect(stack.env.BLOB_STORE_ID).toBe('store_localstore')
      // Presigned uploads' webhooks are verified with the store's Ed25519 key (SPKI PEM).
      expect(stack.env.BLOB_WEBHOOK_PUBLIC_KEY).toBe(stack.blob.webhookPublicKey)
      expect(stack.env.BLOB_WEBHOOK_PUBLIC_KEY).toMatch(/^-----BEGIN PUBLIC KEY-----\n/)
      const claims = JSON.parse(Buffer.from(stack.env.VERCEL_OIDC_TOKEN.split('.')[1], 'base64url').toString())
      expect(claims).toMatchObject({ aud: expect.any(String), sub: expect.stringMatching(/^owner:.*:project:/) })
      expect(claims.exp - Date.now() / 1000).toBeGreaterThan(11 * 3600)
      const { VERCEL_OIDC_TOKEN, BLOB_STORE_ID, VERCEL_BLOB_API_URL } = stack.env
      await withEnv({ VERCEL_OIDC_TOKEN, BLOB_STORE_ID, VERCEL_BLOB_API_URL, VERCEL_BLOB_RETRIES: '0' }, async () => {
        const stored = await put('local/a.wav', 'RIFF', { access: 'private' })
        expect((await list({ prefix: 'local/' })).blobs.map((b) => b.pathname)).toEqual([stored.pathname])
      })
      expect(stack.blob.auth.map((a: any) => a.kind)).toEqual(['oidc', 'oidc'])
    } finally {
      await stack.close()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('the route with OIDC (BLOB_STORE_ID, no read-write token)', () => {
  let oidcHandlers: ReturnType<typeof createAudioHandlers>
  beforeAll(() => {
    oidcHandlers = createAudioHandlers(s.oidcOptions())
  })

  it('a streamed POST with the token only in the request (x-vercel-oidc-token) is stored with the OIDC bearer and the store id, and GET reads the private blob back with it', async () => {
    expect(process.env.VERCEL_OIDC_TOKEN).toBeUndefined()
    const oidc = s.blob.oidcToken()
    const id = await recording()
    const before = s.blob.auth.length
    const res = await s.post(id, wav, {
      token: alice,
      headers: { ...meta, 'x-vercel-oidc-token': oidc },
      handlers: oidcHandlers,
    })
    expect(res.status).toBe(201)
    const { pathname } = await res.json()
    expect(s.blob.read(pathname).equals(wav)).toBe(true)
    expect(s.blob.meta.get(pathname).access).toBe('private')
    const putCall = s.blob.puts.at(-1)!
    expect(putCall.headers.authorization).toBe(`Bearer ${oidc}`)
    expect(putCall.headers['x-vercel-blob-store-id']).toBe('localstore')
    expect(authSince(before)).toEqual([['put', 'oidc', 'localstore']])
    // The session is `transcribing` now; GET streams its private blob with the request's token.
    const got = await s.get(id, { token: alice, headers: { 'x-vercel-oidc-token': oidc }, handlers: oidcHandlers })
    expect(got.status).toBe(200)
    expect(Buffer.from(await got.arrayBuffer()).equals(wav)).toBe(true)
    expect(authSince(before).at(-1)).toEqual(['read', 'oidc', null])
    // Without a token, the private blob cannot be read: a 503 naming what to fix.
    const none = await errorOf(await s.get(id, { token: alice, handlers: oidcHandlers }))
    expect([none.status, none.code]).toEqual([503, 'config_missing'])
    expect(none.message).toContain('BLOB_STORE_ID is set but no OIDC token reached this request')
  })

  it('GET of audio that needs no Blob credential works without any OIDC token', async () => {
    const id = await s.session('user_alice') // on the audio server, not the store
    const res = await s.get(id, { token: alice, handlers: oidcHandlers })
    expect(res.status).toBe(200)
    expect((await res.arrayBuffer()).byteLength).toBe(s.wav.length)
  })

  it('VERCEL_OIDC_TOKEN is read at each request, not when the handlers were built', async () => {
    const first = s.blob.oidcToken()
    const second = s.blob.oidcToken({ claims: { jti: 'second' } })
    expect(second).not.toBe(first)
    for (const token of [first, second]) {
      await withEnv({ VERCEL_OIDC_TOKEN: token }, async () => {
        const res = await s.post(await recording(), wav, { token: alice, headers: meta, handlers: oidcHandlers })
        expect(res.status).toBe(201)
        expect(s.blob.puts.at(-1)!.headers.authorization).toBe(`Bearer ${token}`)
      })
    }
    // The header wins over the environment.
    const header = s.blob.oidcToken({ claims: { jti: 'header' } })
    await withEnv({ VERCEL_OIDC_TOKEN: first }, async () => {
      const res = await s.post(await recording(), wav, {
        token: alice,
        headers: { ...meta, 'x-vercel-oidc-token': header },
        handlers: oidcHandlers,
      })
      expect(res.status).toBe(201)
      expect(s.blob.puts.at(-1)!.headers.authorization).toBe(`Bearer ${header}`)
    })
  })

  it('OIDC wins over BLOB_READ_WRITE_TOKEN in the environment, which serves when no OIDC token arrives', async () => {
    const handlers = await withEnv({ BLOB_READ_WRITE_TOKEN: s.blob.token }, async () =>
      createAudioHandlers(s.oidcOptions()),
    )
    const oidc = s.blob.oidcToken()
    const withOidc = await s.post(await recording(), wav, {
      token: alice,
      headers: { ...meta, 'x-vercel-oidc-token': oidc },
      handlers,
    })
    expect(withOidc.status).toBe(201)
    expect(s.blob.puts.at(-1)!.headers.authorization).toBe(`Bearer ${oidc}`)
    const without = await s.post(await recording(), wav, { token: alice, headers: meta, handlers })
    expect(without.status).toBe(201)
    expect(s.blob.puts.at(-1)!.headers.authorization).toBe(`Bearer ${s.blob.token}`)
    // An expired token counts as absent, as in the SDK: the read-write token stands in.
    const expired = await s.post(await recording(), wav, {
      token: alice,
      headers: { ...meta, 'x-vercel-oidc-token': s.blob.oidcToken({ expiresInSec: -60 }) },
      handlers,
    })
    expect(expired.status).toBe(201)
    expect(s.blob.puts.at(-1)!.headers.authorization).toBe(`Bearer ${s.blob.token}`)
  })

  it('an explicit blobReadWriteToken option wins over OIDC', async () => {
    const handlers = createAudioHandlers(s.options({ blobStoreId: s.blob.blobStoreIdEnv }))
    const res = await s.post(await recording(), wav, {
      token: alice,
      headers: { ...meta, 'x-vercel-oidc-token': s.blob.oidcToken() },
      handlers,
    })
    expect(res.status).toBe(201)
    expect(s.blob.puts.at(-1)!.headers.authorization).toBe(`Bearer ${s.blob.token}`)
  })

  it('an expired VERCEL_OIDC_TOKEN → 503 oidc_token_expired naming what to fix, never the token; nothing stored', async () => {
    const records: unknown[] = []
    const handlers = createAudioHandlers({ ...s.oidcOptions(), onRequest: (r: unknown) => records.push(r) })
    const expired = s.blob.oidcToken({ expiresInSec: -60 })
    const id = await recording()
    const blobs = s.blob.list()
    const puts = s.blob.puts.length
    // The deployment's own token (the environment's) is the deployment's to fix; an expired
    // header is the request's (oidc-header.spec.ts).
    const e = await errorOf(
      await withEnv({ VERCEL_OIDC_TOKEN: expired }, async () =>
        s.post(id, wav, { token: alice, headers: meta, handlers }),
      ),
    )
    expect([e.status, e.code]).toEqual([503, 'oidc_token_expired'])
    expect(e.message).toMatch(/expired.*vercel env pull.*BLOB_READ_WRITE_TOKEN/)
    expect(e.message).not.toContain(expired)
    expect(s.blob.puts.length).toBe(puts)
    await expectUntouched(id, blobs)
    await new Promise((r) => setTimeout(r, 50))
    expect(records.length).toBeGreaterThan(0)
    expect(JSON.stringify(records)).not.toContain(expired.split('.')[2])
  })

  it('no OIDC token at all with BLOB_STORE_ID set → 503 config_missing naming the three ways to fix it', async () => {
    const id = await recording()
    const blobs = s.blob.list()
    const e = await errorOf(await s.post(id, wav, { token: alice, headers: meta, handlers: oidcHandlers }))
    expect([e.status, e.code]).toEqual([503, 'config_missing'])
    expect(e.message).toContain('BLOB_STORE_ID is set but no OIDC token reached this request')
    expect(e.message).toMatch(/VERCEL_OIDC_TOKEN.*vercel env pull.*BLOB_READ_WRITE_TOKEN/)
    await expectUntouched(id, blobs)
  })

  it('a store id the token may not use → 502 blob_access_denied naming BLOB_STORE_ID; nothing stored', async () => {
    const handlers = createAudioHandlers(s.oidcOptions({ blobStoreId: 'store_otherstore' }))
    const id = await recording()
    const blobs = s.blob.list()
    const e = await errorOf(
      await s.post(id, wav, {
        token: alice,
        headers: { ...meta, 'x-vercel-oidc-token': s.blob.oidcToken() },
        handlers,
      }),
    )
    expect([e.status, e.code]).toEqual([502, 'blob_access_denied'])
    expect(e.message).toContain('BLOB_STORE_ID')
    expect(s.blob.puts.at(-1)!.headers['x-vercel-blob-store-id']).toBe('otherstore')
    await expectUntouched(id, blobs)
  })

  it("blob.generate-client-token → 400 client_tokens_need_read_write_token naming presigned uploads; Blob's HMAC webhook → 401", async () => {
    const id = await recording()
    const event = (body: unknown, headers: Record<string, string> = {}) =>
      s.post(id, JSON.stringify(body), {
        token: alice,
        headers: { 'content-type': 'application/json', 'x-vercel-oidc-token': s.blob.oidcToken(), ...headers },
        handlers: oidcHandlers,
      })
    const e = await errorOf(
      await event({
        type: 'blob.generate-client-token',
        payload: {
          pathname: `listening-sessions/${id}/a.wav`,
          clientPayload: JSON.stringify({ durationMs: 2000, contentType: 'audio/wav' }),
          multipart: false,
        },
      }),
    )
    expect([e.status, e.code]).toEqual([400, 'client_tokens_need_read_write_token'])
    expect(e.message).toMatch(/presigned uploads.*BLOB_READ_WRITE_TOKEN/)
    const webhook = await errorOf(
      await event(
        { type: 'blob.upload-completed', payload: { blob: { url: `${s.blob.url}/x.wav` }, tokenPayload: null } },
        { 'x-vercel-signature': '00'.repeat(32) },
      ),
    )
    expect([webhook.status, webhook.code]).toEqual([401, 'invalid_signature'])
  })
})

describe('sweepOrphanAudio with OIDC (VERCEL_OIDC_TOKEN + BLOB_STORE_ID)', () => {
  const SECRET = 'sweep-secret-for-oidc-tests'
  let orphan: string
  beforeAll(async () => {
    process.env.SESSION_AUDIO_SWEEP_SECRET = SECRET // the Convex deployment's (it runs in this process)
    orphan = await storeDated(s, 'listening-sessions/gone/oidc-old.wav', 2 * DAY)
  })
  afterAll(() => {
    delete process.env.SESSION_AUDIO_SWEEP_SECRET
  })

  const options = (extra = {}) => ({ ...s.oidcOptions(), sweepSecret: SECRET, olderThanMs: DAY, ...extra })

  it('lists and deletes with the OIDC token from the environment; without one it names what to fix', async () => {
    await expect(sweepOrphanAudio(options({ dryRun: true }))).rejects.toThrow(
      /config_missing: .*BLOB_STORE_ID is set but no OIDC token/,
    )
    const oidc = s.blob.oidcToken()
    const before = s.blob.auth.length
    const report = await withEnv({ VERCEL_OIDC_TOKEN: oidc }, () => sweepOrphanAudio(options()))
    expect(report.orphans).toContain(orphan)
    expect(report.deleted).toBe(report.orphans.length)
    expect(s.blob.list()).not.toContain(orphan)
    const calls = authSince(before)
    expect(calls).toContainEqual(['list', 'oidc', 'localstore'])
    expect(calls).toContainEqual(['delete', 'oidc', 'localstore'])
    expect(calls.every(([, kind]) => kind === 'oidc')).toBe(true)
  })

  it('`npx session-audio sweep` with BLOB_STORE_ID + VERCEL_OIDC_TOKEN and no read-write token', async () => {
    const cli = path.resolve('bin/session-audio.mjs')
    const { BLOB_READ_WRITE_TOKEN: _, ...inherited } = process.env
    const env = {
      ...inherited,
      NEXT_PUBLIC_CONVEX_URL: s.convex.url,
      BLOB_STORE_ID: s.blob.blobStoreIdEnv,
      VERCEL_OIDC_TOKEN: s.blob.oidcToken(),
      VERCEL_BLOB_API_URL: s.blob.apiUrl,
      SESSION_AUDIO_SWEEP_SECRET: SECRET,
    }
    const before = s.blob.auth.length
    const dry = await run('node', [cli, 'sweep', '--older-than', '24h', '--dry-run'], { env })
    expect(dry.stdout).toMatch(/listed, .* dry run, nothing deleted/)
    expect(authSince(before)).toContainEqual(['list', 'oidc', 'localstore'])
    const expired = await run('node', [cli, 'sweep', '--older-than', '24h', '--dry-run'], {
      env: { ...env, VERCEL_OIDC_TOKEN: s.blob.oidcToken({ expiresInSec: -60 }) },
    }).catch((e) => e)
    expect([expired.code, expired.stderr]).toEqual([1, expect.stringContaining('oidc_token_expired')])
  })
})
