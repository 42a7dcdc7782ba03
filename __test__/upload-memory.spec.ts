// A 256 MiB upload streams through the addon into the Blob-compatible store without the process
// holding it: RSS growth stays under 64 MiB (the bound is asserted; the time is not).
import { spawn } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { sineWav } from '../stack/wav.mjs'
import { startStack, type Stack } from './helpers'

let s: Stack
let store: { url: string; apiUrl: string; host: string; token: string; root: string; stop: () => void }
beforeAll(async () => {
  s = await startStack()
  // The store runs in its own process, as Vercel Blob is remote: this process's RSS is then the
  // route's (client body + addon), not the store's.
  const root = path.join(s.root, 'remote-blob')
  const child = spawn(process.execPath, [path.resolve(__dirname, '../stack/blob-process.mjs'), root], {
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  const line = await new Promise<string>((resolve) => child.stdout.once('data', (d) => resolve(String(d))))
  store = { ...JSON.parse(line), root, stop: () => child.kill() }
  // The Convex deployment attaches audio only from stores it is configured with.
  s.convex.env.SESSION_AUDIO_BLOB_HOSTS = `${s.blob.url},${store.url}`
})
afterAll(async () => {
  store.stop()
  await s.close()
})

describe('upload memory', () => {
  it('a 256 MiB upload keeps RSS growth under 64 MiB and lands intact', async () => {
    const total = 256 * 1024 * 1024
    const tone = sineWav(30, { sampleRate: 16000 }) // ~1 MiB of real PCM, repeated
    const header = Buffer.from(tone.subarray(0, 44))
    header.writeUInt32LE(total - 8, 4)
    header.writeUInt32LE(total - 44, 40)
    const pcm = tone.subarray(44)
    const sent = crypto.createHash('sha256')
    let produced = 0
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        if (produced >= total) return c.close()
        // 64 KiB chunks, as a socket delivers them. They are views of one immutable 1 MiB tone, so
        // the test's own client allocates nothing per chunk and the RSS measured is the route's.
        const at = (produced - 44) % (pcm.length - 65536)
        const chunk = produced === 0 ? header : pcm.subarray(at, at + Math.min(65536, total - produced))
        sent.update(chunk)
        produced += chunk.length
        c.enqueue(chunk)
      },
    })
    const token = await s.clerk.sessionToken({ sub: 'user_big' })
    const id = await s.session('user_big', null, { status: 'recording' })
    const handlers = s.handlers({
      maxUploadBytes: 512 * 1024 * 1024,
      blobApiUrl: store.apiUrl,
      blobReadWriteToken: store.token,
      trustedHosts: [store.host],
    })
    global.gc?.()
    const baseline = process.memoryUsage.rss()
    let peak = baseline
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 10)
    let res: Response
    try {
      res = await s.post(id, body, {
        token,
        handlers,
        // The length the bytes carry (16 kHz mono s16: 32 bytes a ms): it is measured.
        headers: { 'x-duration-ms': String(Math.floor((total - 44) / 32)), 'x-content-type': 'audio/wav' },
      })
    } finally {
      clearInterval(sampler)
    }
    expect(res.status).toBe(201)
    const { pathname, sizeBytes } = await res.json()
    expect(sizeBytes).toBe(total)
    const stored = crypto.createHash('sha256')
    for await (const chunk of fs.createReadStream(path.join(store.root, pathname))) stored.update(chunk as Buffer)
    expect(stored.digest('hex')).toBe(sent.digest('hex'))
    const growthMiB = (peak - baseline) / 2 ** 20
    console.log(`256 MiB upload: RSS growth ${growthMiB.toFixed(1)} MiB`)
    expect(growthMiB).toBeLessThan(64)
  }, 300_000)
})
