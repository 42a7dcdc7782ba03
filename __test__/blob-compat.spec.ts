// The Blob-compatible store must speak what Vercel Blob speaks: prove it with the unmodified
// `@vercel/blob` client (put, head, del, list) against it.
import { del, head, list, put } from '@vercel/blob'
import fs from 'node:fs'
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
