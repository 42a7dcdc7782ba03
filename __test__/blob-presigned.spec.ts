// Presigned uploads, as an OIDC-only project makes them: the local store must issue signed tokens,
// verify presigned PUT and multipart requests, and sign the completion webhook with Ed25519 the way
// Vercel Blob does. Proven with the unmodified `@vercel/blob` (issueSignedToken, presignUrl, and
// `uploadPresigned` + `handleUploadPresigned` from `@vercel/blob/client`); the refusals are made by
// hand from SDK-signed URLs, one change at a time. No addon needed. (`put`/`head`/`list`/`del` over
// OIDC are proven in blob-oidc.spec.ts.)
import {
  BlobAccessError,
  BlobContentTypeNotAllowedError,
  BlobError,
  BlobFileTooLargeError,
  issueSignedToken,
  presignUrl,
  type IssuedSignedToken,
} from '@vercel/blob'
import {
  generateClientTokenFromReadWriteToken,
  handleUploadPresigned,
  uploadPresigned,
  type HandleUploadPresignedBody,
} from '@vercel/blob/client'
import crypto from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { startBlob } from '../stack/blob.mjs'

let blob: Awaited<ReturnType<typeof startBlob>>
let root: string
const ENV = [
  'VERCEL_BLOB_API_URL',
  'VERCEL_BLOB_RETRIES',
  'VERCEL_OIDC_TOKEN',
  'BLOB_STORE_ID',
  'BLOB_READ_WRITE_TOKEN',
]
const savedEnv = Object.fromEntries(ENV.map((k) => [k, process.env[k]]))
const MiB = 1024 * 1024

/** Poll `cond` every 10 ms until it holds (true) or `ms` pass (false). */
async function until(cond: () => boolean, ms = 3000) {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) return false
    await new Promise((r) => setTimeout(r, 10))
  }
  return true
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const failure = (p: Promise<unknown>) =>
  p.then(
    () => null,
    (e: Error) => e,
  )

/**
 * An app's upload route on 127.0.0.1 whose handler is the SDK's own `handleUploadPresigned`:
 * `getSignedToken` asks the store for a put delegation with `issue()` and presigns with
 * `urlOptions` (both changeable per test); `completed` collects what `onUploadCompleted` got.
 */
async function startRoute() {
  const route = {
    url: '',
    issue: (pathname: string): Promise<IssuedSignedToken> => issueSignedToken({ pathname, operations: ['put'] }),
    urlOptions: {} as Record<string, unknown>,
    completed: [] as unknown[],
    refusals: [] as string[],
    close: () => new Promise<void>((r) => server.close(() => r())),
  }
  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = []
    for await (const c of req) chunks.push(c as Buffer)
    const body = JSON.parse(Buffer.concat(chunks).toString()) as HandleUploadPresignedBody
    const request = new Request(`${route.url}${req.url}`, { method: 'POST', headers: req.headers as never })
    try {
      const out = await handleUploadPresigned({
        body,
        request,
        webhookPublicKey: blob.webhookPublicKey,
        getSignedToken: async (pathname) => ({
          token: await route.issue(pathname),
          urlOptions: { callbackUrl: `${route.url}/upload`, ...route.urlOptions },
        }),
        onUploadCompleted: async (payload) => void route.completed.push(payload),
      })
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(out))
    } catch (e) {
      route.refusals.push((e as Error).message)
      res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: (e as Error).message }))
    }
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  route.url = `http://127.0.0.1:${(server.address() as { port: number }).port}`
  return route
}
let route: Awaited<ReturnType<typeof startRoute>>

beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'session-audio-presigned-'))
  blob = await startBlob({ root })
  // As an OIDC-only project: the store from BLOB_STORE_ID, the token from VERCEL_OIDC_TOKEN.
  delete process.env.BLOB_READ_WRITE_TOKEN
  process.env.VERCEL_BLOB_API_URL = blob.apiUrl
  process.env.VERCEL_BLOB_RETRIES = '0'
  process.env.VERCEL_OIDC_TOKEN = blob.oidcToken()
  process.env.BLOB_STORE_ID = blob.blobStoreIdEnv
  route = await startRoute()
})
afterAll(async () => {
  await route.close()
  await blob.close()
  fs.rmSync(root, { recursive: true, force: true })
  for (const [k, v] of Object.entries(savedEnv)) {
    if (v === undefined) delete process.env[k]
    else process.env[k] = v
  }
})
beforeEach(() => {
  route.issue = (pathname) => issueSignedToken({ pathname, operations: ['put'] })
  route.urlOptions = {}
})

const decodeScope = (delegationToken: string) =>
  JSON.parse(Buffer.from(delegationToken.split('.')[0], 'base64url').toString('utf8'))

describe('signed tokens', () => {
  it('issueSignedToken over OIDC (env) and with the read-write token: a delegation scoped to the store, recorded with its credential', async () => {
    const before = blob.signedTokens.length
    const viaOidc = await issueSignedToken({})
    expect(viaOidc).toEqual({
      delegationToken: expect.stringMatching(/^[\w-]+\.[\w-]{43}$/),
      clientSigningToken: expect.stringMatching(/^[\w-]{43}$/),
      validUntil: expect.any(Number),
    })
    // The service's defaults: the whole store, reads only, one hour.
    expect(decodeScope(viaOidc.delegationToken)).toEqual({
      storeId: 'store_localstore',
      pathname: '*',
      operations: ['get'],
      validUntil: viaOidc.validUntil,
    })
    expect(Math.abs(viaOidc.validUntil - (Date.now() + 3_600_000))).toBeLessThan(5_000)

    const validUntil = Date.now() + 600_000
    const viaRw = await issueSignedToken({
      token: blob.token,
      pathname: 'uploads/a.wav',
      operations: ['put', 'head'],
      validUntil,
      maximumSizeInBytes: 1000,
      allowedContentTypes: ['audio/*'],
    })
    expect(decodeScope(viaRw.delegationToken)).toEqual({
      storeId: 'store_localstore',
      pathname: 'uploads/a.wav',
      operations: ['put', 'head'],
      validUntil,
      maximumSizeInBytes: 1000,
      allowedContentTypes: ['audio/*'],
    })
    expect(viaRw.validUntil).toBe(validUntil)
    expect(blob.signedTokens.slice(before).map((t: any) => [t.kind, t.storeId, t.body])).toEqual([
      ['oidc', 'localstore', {}],
      [
        'read-write',
        'localstore',
        {
          pathname: 'uploads/a.wav',
          operations: ['put', 'head'],
          validUntil,
          maximumSizeInBytes: 1000,
          allowedContentTypes: ['audio/*'],
        },
      ],
    ])
  })

  it('a body the service would refuse gets 400 bad_request naming the field', async () => {
    const now = Date.now()
    const cases: [string, string][] = [
      ['not JSON', '{'],
      ['not an object', '[]'],
      ['unknown field', JSON.stringify({ maxSize: 10 })],
      ['empty operations', JSON.stringify({ operations: [] })],
      ['unknown operation', JSON.stringify({ operations: ['list'] })],
      ['repeated operation', JSON.stringify({ operations: ['put', 'put'] })],
      ['past validUntil', JSON.stringify({ validUntil: now - 1000 })],
      ['validUntil over 7 days', JSON.stringify({ validUntil: now + 8 * 86_400_000 })],
      ['fractional validUntil', JSON.stringify({ validUntil: now + 1000.5 })],
      ['zero maximumSizeInBytes', JSON.stringify({ maximumSizeInBytes: 0 })],
      ['string maximumSizeInBytes', JSON.stringify({ maximumSizeInBytes: '10' })],
      ['bad content type', JSON.stringify({ allowedContentTypes: ['audio'] })],
      ['pathname not a string', JSON.stringify({ pathname: 7 })],
    ]
    const before = blob.signedTokens.length
    for (const [name, body] of cases) {
      const res = await fetch(`${blob.apiUrl}/signed-token`, {
        method: 'POST',
        headers: { authorization: `Bearer ${blob.token}`, 'content-type': 'application/json' },
        body,
      })
      expect([name, res.status, (await res.json()).error.code]).toEqual([name, 400, 'bad_request'])
    }
    expect(blob.signedTokens.length).toBe(before)
  })

  it('a client token may not ask for one: 403 client_token_not_allowed, which the SDK reports as such', async () => {
    const clientToken = await generateClientTokenFromReadWriteToken({ token: blob.token, pathname: 'uploads/a.wav' })
    const before = blob.signedTokens.length
    const res = await fetch(`${blob.apiUrl}/signed-token`, {
      method: 'POST',
      headers: { authorization: `Bearer ${clientToken}`, 'x-vercel-blob-store-id': 'localstore' },
      body: '{}',
    })
    expect(res.status).toBe(403)
    expect((await res.json()).error.code).toBe('client_token_not_allowed')
    const err = await failure(issueSignedToken({ token: clientToken }))
    expect(err).toBeInstanceOf(BlobError)
    expect(err?.message).toMatch(/client token/)
    expect(blob.signedTokens.length).toBe(before)
  })

  it('an expired OIDC token or another store id may not ask for one: 403 forbidden (BlobAccessError)', async () => {
    const before = blob.signedTokens.length
    const expired = await failure(
      issueSignedToken({ oidcToken: blob.oidcToken({ expiresInSec: -60 }), storeId: blob.blobStoreIdEnv }),
    )
    expect(expired).toBeInstanceOf(BlobAccessError)
    const otherStore = await failure(issueSignedToken({ oidcToken: blob.oidcToken(), storeId: 'store_otherstore' }))
    expect(otherStore).toBeInstanceOf(BlobAccessError)
    expect(blob.signedTokens.length).toBe(before)
  })
})

describe('uploadPresigned through handleUploadPresigned, against the store', () => {
  it('a single PUT (OIDC-issued delegation): stored as sent, random suffix applied, no credential on the wire; the Ed25519 webhook reaches onUploadCompleted', async () => {
    route.urlOptions = { addRandomSuffix: true, allowOverwrite: false, tokenPayload: 'session-1' }
    const data = crypto.randomBytes(50_000)
    const authBefore = blob.auth.length
    const stored = await uploadPresigned('uploads/one.wav', data, {
      access: 'private',
      handleUploadUrl: `${route.url}/upload`,
      contentType: 'audio/wav',
    })
    expect(stored.pathname).toMatch(/^uploads\/one-[\w-]{20}\.wav$/)
    expect(blob.read(stored.pathname).equals(data)).toBe(true)
    expect(blob.meta.get(stored.pathname)).toMatchObject({ contentType: 'audio/wav', size: 50_000 })

    const put = blob.puts.at(-1)!
    expect(put).toMatchObject({ kind: 'presigned', stored: true, pathname: stored.pathname })
    expect(put.headers.authorization).toBeUndefined()
    expect(put.headers['x-vercel-blob-store-id']).toBe('localstore')
    expect(blob.auth.slice(authBefore)).toEqual([
      { op: 'signed-token', kind: 'oidc', storeId: 'localstore' },
      { op: 'put', kind: 'presigned', storeId: 'localstore' },
    ])
    expect(blob.signedTokens.at(-1)).toMatchObject({ kind: 'oidc', body: { pathname: 'uploads/one.wav' } })

    expect(await until(() => route.completed.length === 1)).toBe(true)
    expect(route.completed[0]).toEqual({
      blob: expect.objectContaining({ url: stored.url, pathname: stored.pathname, contentType: 'audio/wav' }),
      tokenPayload: 'session-1',
    })
    // The route may have handled the webhook before its sender has recorded the answer.
    await until(() => blob.webhooks.at(-1)?.status !== 0)
    const hook = blob.webhooks.at(-1)!
    expect(hook).toMatchObject({ url: `${route.url}/upload`, signedWith: 'ed25519', status: 200 })
    expect(hook.signature).toMatch(/^[0-9a-f]{128}$/)
    route.completed.length = 0
  })

  it('no overwrite unless the URL allows it; with allowOverwrite the same pathname is replaced', async () => {
    route.urlOptions = { addRandomSuffix: false, allowOverwrite: false }
    const first = await uploadPresigned('uploads/fixed.wav', 'first', {
      access: 'public',
      handleUploadUrl: `${route.url}/upload`,
    })
    expect(first.pathname).toBe('uploads/fixed.wav')
    const again = await failure(
      uploadPresigned('uploads/fixed.wav', 'second', { access: 'public', handleUploadUrl: `${route.url}/upload` }),
    )
    expect(again).toBeInstanceOf(BlobError)
    expect(blob.read('uploads/fixed.wav').toString()).toBe('first')
    route.urlOptions = { allowOverwrite: true }
    await uploadPresigned('uploads/fixed.wav', 'third', { access: 'public', handleUploadUrl: `${route.url}/upload` })
    expect(blob.read('uploads/fixed.wav').toString()).toBe('third')
    await until(() => route.completed.length === 2)
    route.completed.length = 0
  })

  it('multipart (read-write-issued delegation): three parts all on the same signature, stored as sent, webhook held and released', async () => {
    route.issue = (pathname) =>
      issueSignedToken({ token: blob.token, pathname, operations: ['put'], maximumSizeInBytes: 20 * MiB })
    route.urlOptions = { addRandomSuffix: true, tokenPayload: 'big' }
    const data = crypto.randomBytes(2 * 8 * MiB + 5) // the SDK cuts 8 MiB parts: 3 of them
    const authBefore = blob.auth.length
    const mpuBefore = blob.calls.mpu ?? 0
    blob.state.holdWebhooks = true
    try {
      const stored = await uploadPresigned('uploads/big.wav', data, {
        access: 'private',
        handleUploadUrl: `${route.url}/upload`,
        contentType: 'audio/wav',
        multipart: true,
      })
      expect(stored.pathname).toMatch(/^uploads\/big-[\w-]{20}\.wav$/)
      expect(blob.read(stored.pathname).equals(data)).toBe(true)
      expect(blob.calls.mpu - mpuBefore).toBe(5) // create, 3 parts, complete
      expect(blob.auth.slice(authBefore)).toEqual([
        { op: 'signed-token', kind: 'read-write', storeId: 'localstore' },
        ...Array(5).fill({ op: 'mpu', kind: 'presigned', storeId: 'localstore' }),
      ])
      await sleep(100)
      expect(route.completed).toEqual([]) // held
      blob.state.holdWebhooks = false
      await blob.releaseWebhooks()
      expect(route.completed).toEqual([
        { blob: expect.objectContaining({ pathname: stored.pathname }), tokenPayload: 'big' },
      ])
      expect(blob.webhooks.at(-1)).toMatchObject({ signedWith: 'ed25519', status: 200 })
    } finally {
      blob.state.holdWebhooks = false
      route.completed.length = 0
    }
  })

  it("the SDK's verifier takes the store's Ed25519 webhook as sent, and refuses it HMAC-signed or tampered with", async () => {
    route.urlOptions = { tokenPayload: 'verify-me', addRandomSuffix: true }
    await uploadPresigned('uploads/hook.wav', 'RIFF', { access: 'private', handleUploadUrl: `${route.url}/upload` })
    expect(await until(() => route.completed.length === 1)).toBe(true)
    const { body, signature } = blob.webhooks.at(-1)!
    const deliver = (b: string, sig: string) =>
      fetch(`${route.url}/upload`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-vercel-signature': sig },
        body: b,
      })
    // Sent again as it was: accepted again (the SDK does not deduplicate).
    expect((await deliver(body, signature)).status).toBe(200)
    const hmac = crypto.createHmac('sha256', blob.token).update(body).digest('hex')
    const tampered = body.replace('verify-me', 'someone-else')
    expect(tampered).not.toBe(body)
    const refusalsBefore = route.refusals.length
    expect((await deliver(body, hmac)).status).toBe(400)
    expect((await deliver(tampered, signature)).status).toBe(400)
    expect(
      (
        await deliver(
          body,
          signature.replace(/^./, (c) => (c === '0' ? '1' : '0')),
        )
      ).status,
    ).toBe(400)
    expect(route.refusals.slice(refusalsBefore)).toEqual(Array(3).fill('Vercel Blob: Invalid callback signature'))
    expect(route.completed.map((c: any) => c.tokenPayload)).toEqual(['verify-me', 'verify-me'])
    route.completed.length = 0
  })

  it('over the maximum size, single and multipart: BlobFileTooLargeError, nothing stored', async () => {
    const before = blob.list()
    route.urlOptions = { maximumSizeInBytes: 1000 }
    const single = await failure(
      uploadPresigned('uploads/toolarge.wav', Buffer.alloc(1001), {
        access: 'private',
        handleUploadUrl: `${route.url}/upload`,
      }),
    )
    expect(single).toBeInstanceOf(BlobFileTooLargeError)
    // The delegation's limit binds multipart too, whatever the URL says: the second part is refused.
    route.issue = (pathname) => issueSignedToken({ pathname, operations: ['put'], maximumSizeInBytes: 9 * MiB })
    route.urlOptions = {}
    const multi = await failure(
      uploadPresigned('uploads/toolarge-mpu.wav', Buffer.alloc(10 * MiB), {
        access: 'private',
        handleUploadUrl: `${route.url}/upload`,
        multipart: true,
      }),
    )
    expect(multi).toBeInstanceOf(BlobFileTooLargeError)
    expect(blob.list()).toEqual(before)
  })
})

describe('presigned requests the store refuses (each made from an SDK-signed URL with one thing changed)', () => {
  /** A put delegation (read-write-issued) for `scope`. */
  const delegation = (scope: Record<string, unknown> = {}) =>
    issueSignedToken({ token: blob.token, operations: ['put'], ...scope })
  /** An SDK-presigned PUT URL for `pathname` with these URL options. */
  const signedUrl = async (token: IssuedSignedToken, pathname: string, options: Record<string, unknown> = {}) =>
    new URL((await presignUrl(token, { operation: 'put', pathname, ...options } as never)).presignedUrl)
  /**
   * A URL signed with `token`'s real client signing key, but presigned by the SDK against a scope
   * that claims `claimed` (the SDK checks the scope before signing), then given the real delegation:
   * only the store's own scope check stands in the way.
   */
  const signedPastScope = async (token: IssuedSignedToken, claimed: Record<string, unknown>, pathname: string) => {
    const scope = { ...decodeScope(token.delegationToken), ...claimed }
    const fake = `${Buffer.from(JSON.stringify(scope)).toString('base64url')}.x`
    const url = await signedUrl({ ...token, delegationToken: fake }, pathname)
    url.searchParams.set('vercel-blob-delegation', token.delegationToken)
    return url
  }
  /** PUT `body` to `url` as `uploadPresigned` does: no Authorization, the delegation's store id. */
  const putTo = (url: URL, body: BodyInit, headers: Record<string, string> = {}) =>
    fetch(url, {
      method: 'PUT',
      headers: {
        'x-api-version': '12',
        'x-vercel-blob-store-id': 'localstore',
        'x-vercel-blob-access': 'private',
        'x-content-type': 'audio/wav',
        ...headers,
      },
      body,
    })
  /** Expect `res` refused with `status`/`code` and nothing stored since `before`. */
  async function refused(res: Response, status: number, code: string, before: string[]) {
    expect(res.status).toBe(status)
    const { error } = await res.json()
    expect(error.code).toBe(code)
    expect(blob.list()).toEqual(before)
    return error.message as string
  }

  it('the unchanged URL is stored (the control for every refusal below)', async () => {
    const token = await delegation({ pathname: 'refuse/control.wav', maximumSizeInBytes: 1000 })
    const url = await signedUrl(token, 'refuse/control.wav', {
      maximumSizeInBytes: 500,
      allowedContentTypes: ['audio/*'],
    })
    const res = await putTo(url, 'RIFF')
    expect(res.status).toBe(200)
    expect((await res.json()).pathname).toBe('refuse/control.wav')
    expect(blob.puts.at(-1)).toMatchObject({ kind: 'presigned', stored: true })
  })

  it('a tampered signature → 403 forbidden', async () => {
    const before = blob.list()
    const url = await signedUrl(await delegation(), 'refuse/a.wav')
    const sig = url.searchParams.get('vercel-blob-signature')!
    url.searchParams.set(
      'vercel-blob-signature',
      sig.replace(/^./, (c) => (c === 'A' ? 'B' : 'A')),
    )
    expect(await refused(await putTo(url, 'RIFF'), 403, 'forbidden', before)).toMatch(/signature/i)
  })

  it('a signed parameter added, removed or changed, or another pathname, or a forged delegation → 403 forbidden', async () => {
    const before = blob.list()
    const token = await delegation({ maximumSizeInBytes: 1000 })
    const changes: [string, (u: URL) => void, string?][] = [
      ['maximum size raised', (u) => u.searchParams.set('vercel-blob-maximum-size-in-bytes', '100000')],
      ['maximum size removed', (u) => u.searchParams.delete('vercel-blob-maximum-size-in-bytes')],
      ['overwrite added', (u) => u.searchParams.set('vercel-blob-allow-overwrite', 'true')],
      ['unknown vercel-blob- parameter added', (u) => u.searchParams.set('vercel-blob-extra', '1')],
      ['pathname changed', (u) => u.searchParams.set('pathname', 'refuse/other.wav')],
      [
        'delegation scope widened',
        (u) => {
          const [segment, mac] = u.searchParams.get('vercel-blob-delegation')!.split('.')
          const scope = { ...JSON.parse(Buffer.from(segment, 'base64url').toString()), maximumSizeInBytes: 10 ** 9 }
          u.searchParams.set(
            'vercel-blob-delegation',
            `${Buffer.from(JSON.stringify(scope)).toString('base64url')}.${mac}`,
          )
        },
        'Invalid delegation token',
      ],
    ]
    for (const [name, change, message = 'Invalid signature'] of changes) {
      const url = await signedUrl(token, 'refuse/b.wav', { maximumSizeInBytes: 500 })
      change(url)
      const res = await putTo(url, 'RIFF')
      expect([name, res.status, (await res.json()).error]).toEqual([name, 403, { code: 'forbidden', message }])
    }
    expect(blob.list()).toEqual(before)
  })

  it('an expired URL → 403 forbidden', async () => {
    const before = blob.list()
    const url = await signedUrl(await delegation(), 'refuse/c.wav', { validUntil: Date.now() + 200 })
    expect(url.searchParams.get('vercel-blob-valid-until')).toMatch(/^\d+$/)
    await sleep(300)
    expect(await refused(await putTo(url, 'RIFF'), 403, 'forbidden', before)).toMatch(/presigned URL has expired/)
  })

  it('an expired delegation → 403 forbidden', async () => {
    const before = blob.list()
    const url = await signedUrl(await delegation({ validUntil: Date.now() + 1000 }), 'refuse/d.wav')
    expect(url.searchParams.has('vercel-blob-valid-until')).toBe(false) // the delegation's expiry alone
    await sleep(1100)
    expect(await refused(await putTo(url, 'RIFF'), 403, 'forbidden', before)).toMatch(/delegation has expired/)
  })

  it('a pathname outside the delegation’s scope, signed with its real key → 403 forbidden', async () => {
    const before = blob.list()
    const token = await delegation({ pathname: 'refuse/only-this.wav' })
    const url = await signedPastScope(token, { pathname: '*' }, 'refuse/e.wav')
    expect(await refused(await putTo(url, 'RIFF'), 403, 'forbidden', before)).toMatch(/scope/)
  })

  it('a get-only delegation used for put, signed with its real key → 403 forbidden', async () => {
    const before = blob.list()
    const token = await issueSignedToken({ token: blob.token, operations: ['get'] })
    await expect(signedUrl(token, 'refuse/f.wav')).rejects.toThrow(/not valid for presigned write/)
    const url = await signedPastScope(token, { operations: ['get', 'put'] }, 'refuse/f.wav')
    expect(await refused(await putTo(url, 'RIFF'), 403, 'forbidden', before)).toMatch(/"put"/)
  })

  it('another x-vercel-blob-store-id → 403 forbidden', async () => {
    const before = blob.list()
    const url = await signedUrl(await delegation(), 'refuse/g.wav')
    const res = await putTo(url, 'RIFF', { 'x-vercel-blob-store-id': 'otherstore' })
    expect(await refused(res, 403, 'forbidden', before)).toMatch(/store/)
  })

  it('an Authorization header next to the presigned query → 400 bad_request', async () => {
    const before = blob.list()
    const url = await signedUrl(await delegation(), 'refuse/h.wav')
    const res = await putTo(url, 'RIFF', { authorization: `Bearer ${blob.token}` })
    expect(await refused(res, 400, 'bad_request', before)).toMatch(/Authorization/)
  })

  it('over the stricter of the delegation’s and the URL’s maximum size → 400 bad_request, in the words the SDK maps to BlobFileTooLargeError', async () => {
    const before = blob.list()
    const cases: [string, Record<string, unknown>, Record<string, unknown>, number][] = [
      ['delegation only', { maximumSizeInBytes: 1000 }, {}, 1001],
      ['URL stricter', { maximumSizeInBytes: 1000 }, { maximumSizeInBytes: 500 }, 501],
      ['URL only', {}, { maximumSizeInBytes: 500 }, 501],
    ]
    for (const [name, scope, options, size] of cases) {
      const url = await signedUrl(await delegation(scope), 'refuse/i.wav', options)
      const ok = await putTo(new URL(url), Buffer.alloc(size - 1))
      expect([name, ok.status]).toEqual([name, 200])
      await fetch(`${blob.apiUrl}/delete`, {
        method: 'POST',
        headers: { authorization: `Bearer ${blob.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ urls: ['refuse/i.wav'] }),
      })
      const res = await putTo(url, Buffer.alloc(size))
      expect([name, res.status]).toEqual([name, 400])
      expect((await res.json()).error.message).toMatch(/the file length cannot be greater than/)
    }
    expect(blob.list()).toEqual(before)
  })

  it('a type neither list allows, or one the URL narrows away → 400 bad_request (BlobContentTypeNotAllowedError through the SDK)', async () => {
    const before = blob.list()
    const token = await delegation({ allowedContentTypes: ['audio/*'] })
    const url = await signedUrl(token, 'refuse/j.wav', { allowedContentTypes: ['audio/wav'] })
    for (const type of ['text/plain', 'audio/webm']) {
      const res = await putTo(url, 'RIFF', { 'x-content-type': type })
      expect([type, res.status]).toEqual([type, 400])
      expect((await res.json()).error.message).toBe(`contentType "${type}" is not allowed`)
    }
    route.issue = (pathname) => issueSignedToken({ pathname, operations: ['put'], allowedContentTypes: ['audio/*'] })
    const viaSdk = await failure(
      uploadPresigned('refuse/k.txt', 'hello', {
        access: 'private',
        handleUploadUrl: `${route.url}/upload`,
        contentType: 'text/plain',
      }),
    )
    expect(viaSdk).toBeInstanceOf(BlobContentTypeNotAllowedError)
    expect(blob.list()).toEqual(before)
  })
})
