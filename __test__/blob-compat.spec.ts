// The Blob-compatible store must speak what Vercel Blob speaks: prove it with the unmodified
// `@vercel/blob` client (put, head, del, list, client tokens, multipart, the signed webhook).
import {
  BlobAccessError,
  BlobClientTokenExpiredError,
  BlobContentTypeNotAllowedError,
  BlobFileTooLargeError,
  BlobPathnameMismatchError,
  del,
  head,
  list,
  put,
} from '@vercel/blob'
import { generateClientTokenFromReadWriteToken, handleUpload } from '@vercel/blob/client'
import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startBlob } from '../stack/blob.mjs'

let blob: Awaited<ReturnType<typeof startBlob>>
let root: string
beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'session-audio-blob-'))
  blob = await startBlob({ root })
  process.env.VERCEL_BLOB_API_URL = blob.apiUrl
  process.env.VERCEL_BLOB_RETRIES = '0'
})
afterAll(async () => {
  await blob.close()
  fs.rmSync(root, { recursive: true, force: true })
})

describe('@vercel/blob against the Blob-compatible store', () => {
  it('put, head, fetch with Range, list, del', async () => {
    const data = Buffer.from('RIFF....WAVEfmt some audio bytes')
    const stored = await put('sessions/a.wav', data, {
      access: 'public',
      token: blob.token,
      contentType: 'audio/wav',
      addRandomSuffix: true,
    })
    expect(stored.pathname).toMatch(/^sessions\/a-[\w-]+\.wav$/)
    expect(stored.url).toBe(`${blob.url}/${stored.pathname}`)
    expect(stored.contentType).toBe('audio/wav')
    const meta = await head(stored.url, { token: blob.token })
    expect(meta).toMatchObject({ pathname: stored.pathname, size: data.length, contentType: 'audio/wav' })
    expect(meta.uploadedAt).toBeInstanceOf(Date)
    const part = await fetch(stored.url, { headers: { range: 'bytes=0-3' } })
    expect(part.status).toBe(206)
    expect(part.headers.get('content-range')).toBe(`bytes 0-3/${data.length}`)
    expect(await part.text()).toBe('RIFF')
    const listed = await list({ token: blob.token, prefix: 'sessions/' })
    expect(listed.blobs.map((b) => b.pathname)).toContain(stored.pathname)
    await del(stored.url, { token: blob.token })
    await expect(head(stored.url, { token: blob.token })).rejects.toThrow(/does not exist/)
  })

  it('private blobs need the token to be read', async () => {
    const stored = await put('private/b.wav', Buffer.from('RIFFxxxxWAVE'), { access: 'private', token: blob.token })
    expect((await fetch(stored.url)).status).toBe(403)
    const ok = await fetch(stored.url, { headers: { authorization: `Bearer ${blob.token}` } })
    expect(ok.status).toBe(200)
  })

  it('refuses a wrong token and an existing pathname without overwrite, as the SDK expects', async () => {
    await expect(put('c.wav', 'x', { access: 'public', token: 'vercel_blob_rw_other_secret' })).rejects.toThrow(
      /Access denied/,
    )
    await put('c.wav', 'x', { access: 'public', token: blob.token })
    await expect(put('c.wav', 'y', { access: 'public', token: blob.token })).rejects.toThrow(/already exists/)
    await put('c.wav', 'y', { access: 'public', token: blob.token, allowOverwrite: true })
    expect(await (await fetch(`${blob.url}/c.wav`)).text()).toBe('y')
  })
})

describe('client tokens, enforced as the service enforces them (tokens minted by the official SDK)', () => {
  const mint = (extra: Record<string, unknown> = {}) =>
    generateClientTokenFromReadWriteToken({
      token: blob.token,
      pathname: 'uploads/a.wav',
      allowedContentTypes: ['audio/*'],
      maximumSizeInBytes: 1000,
      validUntil: Date.now() + 60_000,
      ...extra,
    })

  it('a token allows its pathname, its types (wildcards too) and its size, and nothing else', async () => {
    const token = await mint()
    const ok = await put('uploads/a.wav', Buffer.alloc(500, 1), { access: 'public', token, contentType: 'audio/wav' })
    expect(ok.pathname).toBe('uploads/a.wav')
    const cases: [string, () => Promise<unknown>, new (...a: never[]) => Error][] = [
      [
        'another pathname',
        async () => put('uploads/b.wav', 'x', { access: 'public', token, contentType: 'audio/wav' }),
        BlobPathnameMismatchError,
      ],
      [
        'a type not allowed',
        async () => put('uploads/a.wav', 'x', { access: 'public', token: await mint(), contentType: 'text/plain' }),
        BlobContentTypeNotAllowedError,
      ],
      [
        'over the size',
        async () =>
          put('uploads/a.wav', Buffer.alloc(2000, 1), {
            access: 'public',
            token: await mint({ allowOverwrite: true }),
            contentType: 'audio/wav',
          }),
        BlobFileTooLargeError,
      ],
      [
        'expired',
        async () =>
          put('uploads/a.wav', 'x', {
            access: 'public',
            token: await mint({ validUntil: Date.now() - 1000 }),
            contentType: 'audio/wav',
          }),
        BlobClientTokenExpiredError,
      ],
      [
        'signed with another key',
        async () =>
          put('uploads/a.wav', 'x', {
            access: 'public',
            token: await generateClientTokenFromReadWriteToken({
              token: blob.token.replace(/[^_]+$/, 'forged'),
              pathname: 'uploads/a.wav',
              validUntil: Date.now() + 60_000,
            }),
            contentType: 'audio/wav',
          }),
        BlobAccessError,
      ],
    ]
    for (const [name, attempt, kind] of cases) {
      const err = await attempt().then(
        () => null,
        (e) => e,
      )
      expect([name, err?.constructor?.name]).toEqual([name, kind.name])
    }
    expect(blob.read('uploads/a.wav').length).toBe(500)
  })

  it('the completion webhook is signed as the official handleUpload verifies it', async () => {
    const seen: unknown[] = []
    const app = http.createServer(async (req, res) => {
      const chunks: Buffer[] = []
      for await (const c of req) chunks.push(c as Buffer)
      const body = JSON.parse(Buffer.concat(chunks).toString())
      const request = new Request('http://app.local/upload', { method: 'POST', headers: req.headers as never })
      try {
        const out = await handleUpload({
          body,
          request,
          token: blob.token,
          onBeforeGenerateToken: async () => ({}),
          onUploadCompleted: async (payload) => void seen.push(payload),
        })
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(out))
      } catch (e) {
        res.writeHead(400).end(String(e))
      }
    })
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r))
    const callbackUrl = `http://127.0.0.1:${(app.address() as { port: number }).port}/upload`
    try {
      const token = await mint({
        pathname: 'uploads/hooked.wav',
        onUploadCompleted: { callbackUrl, tokenPayload: 'who' },
      })
      const stored = await put('uploads/hooked.wav', Buffer.alloc(100, 1), {
        access: 'public',
        token,
        contentType: 'audio/wav',
      })
      for (let i = 0; i < 100 && !seen.length; i++) await new Promise((r) => setTimeout(r, 20))
      expect(seen).toEqual([
        { blob: expect.objectContaining({ url: stored.url, pathname: stored.pathname }), tokenPayload: 'who' },
      ])
      // A client-token upload's webhook keeps the HMAC (presigned ones are Ed25519: blob-presigned.spec.ts).
      expect(blob.webhooks.at(-1)).toMatchObject({
        url: callbackUrl,
        status: 200,
        signedWith: 'hmac',
        signature: expect.stringMatching(/^[0-9a-f]{64}$/),
      })
    } finally {
      app.close()
    }
  })

  it('multipart with a client token: parts in any order, completed in any order', async () => {
    const token = await mint({ pathname: 'uploads/big.wav', maximumSizeInBytes: 20 * 1024 * 1024 })
    const data = Buffer.alloc(9 * 1024 * 1024 + 5, 7)
    const stored = await put('uploads/big.wav', data, {
      access: 'public',
      token,
      contentType: 'audio/wav',
      multipart: true,
    })
    expect(blob.read(stored.pathname).equals(data)).toBe(true)
  })
})
