// client/blob/ in Chromium, where it sends with XMLHttpRequest (upload progress, and a stall
// is stallMs without progress): a multipart upload over OIDC (presigned URLs) with the parts in
// ascending order, as the recorder sends them, and one part whose answer never comes, against the real route and the Blob emulator. The page and
// the route share an origin, as in an app; Blob's API is another origin (CORS), as on Vercel.
import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { chromium, type Browser } from 'playwright-core'
import { BASE_ARGS, CHROMIUM } from '../stack/chromium.mjs'
import { createAudioHandlers } from '../index.js'
import { sineWav } from '../stack/wav.mjs'
import { startStack, type Stack } from '../__test__/helpers'

const PART = 256 * 1024
let s: Stack
let browser: Browser
let server: http.Server
let origin = ''

beforeAll(async () => {
  s = await startStack()
  const handlers = createAudioHandlers(s.oidcOptions({}))
  // The app: a blank page, client/**.mjs, and the audio route (with the platform's OIDC token).
  server = http.createServer(async (req, res) => {
    const url = new URL(req.url!, 'http://app.local')
    if (url.pathname === '/') {
      res.writeHead(200, { 'content-type': 'text/html' })
      return res.end('<!doctype html><title>parts</title>')
    }
    if (/^\/client\/([\w-]+\/)?[\w-]+\.mjs$/.test(url.pathname)) {
      res.writeHead(200, { 'content-type': 'text/javascript' })
      return res.end(fs.readFileSync(path.join(__dirname, '..', url.pathname)))
    }
    const m = url.pathname.match(/^\/api\/listening-sessions\/([^/]+)\/audio$/)
    if (!m || req.method !== 'POST') {
      res.writeHead(404)
      return res.end()
    }
    const headers = new Headers()
    for (const [k, v] of Object.entries(req.headers)) headers.set(k, String(v))
    headers.set('x-vercel-oidc-token', s.blob.oidcToken())
    const chunks: Buffer[] = []
    for await (const c of req) chunks.push(c)
    const request = new Request(`http://app.local${url.pathname}`, {
      method: 'POST',
      headers,
      body: Buffer.concat(chunks),
    })
    const answer = await handlers.POST(request, { params: Promise.resolve({ sessionId: m[1] }) })
    res.writeHead(answer.status, [...answer.headers].flat())
    res.end(Buffer.from(await answer.arrayBuffer()))
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  origin = `http://127.0.0.1:${(server.address() as { port: number }).port}`
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', ...BASE_ARGS] })
})
afterAll(async () => {
  await browser?.close()
  server?.close()
  await s?.close()
})

it('XMLHttpRequest: presigned parts in ascending order, a stalled part sent again, progress, stored as sent', async () => {
  const id = await s.session('user_alice', null, { status: 'recording' })
  const token = await s.clerk.sessionToken({ sub: 'user_alice' })
  const wav = sineWav(30) // 4 parts of 256 KiB, the last shorter
  const page = await browser.newPage()
  const errors: string[] = []
  page.on('console', (m) => {
    if (m.type() === 'error' && !/status of (400|404)/.test(m.text())) errors.push(m.text())
  })
  // The page asks, just before part 2, for that part's answer never to come.
  await page.exposeFunction('hangNextPart', () => {
    s.blob.state.misbehave = { kind: 'mpu-part', mode: 'hang' }
  })
  await page.goto(origin)
  await page.addScriptTag({
    type: 'module',
    content: "import * as p from '/client/blob/multipart.mjs'; window.parts = p",
  })
  await page.waitForFunction(() => (window as any).parts)
  s.blob.state.holdWebhooks = true
  try {
    const result = await page.evaluate(
      async ({ id, token, api, b64, PART }) => {
        const w = window as any
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))
        const progress: number[] = []
        let uploadId = ''
        const mpu = w.parts.createMultipartUpload({
          routeUrl: `/api/listening-sessions/${id}/audio`,
          headers: { authorization: `Bearer ${token}` },
          pathname: `listening-sessions/${id}/recording.wav`,
          contentType: 'audio/wav',
          clientPayload: JSON.stringify({ durationMs: 30000, contentType: 'audio/wav' }),
          partSize: PART,
          apiUrl: api,
          stallMs: 500,
          retry: { attempts: 4, baseMs: 20, maxMs: 100 },
          onProgress: ({ uploadedBytes }: { uploadedBytes: number }) => progress.push(uploadedBytes),
          onStateChange: (st: { uploadId: string }) => (uploadId = st.uploadId),
        })
        const total = Math.ceil(bytes.length / PART)
        for (let n = 1; n <= total; n++) {
          if (n === 2) await w.hangNextPart()
          await mpu.uploadPart(n, new Blob([bytes.slice((n - 1) * PART, n * PART)]))
        }
        const stored = await mpu.complete(total)
        return { stored, progress, uploadId, xhr: typeof XMLHttpRequest }
      },
      { id, token, api: s.blob.apiUrl, b64: wav.toString('base64'), PART },
    )
    expect(result.xhr).toBe('function')
    expect(s.blob.read(result.stored.pathname).equals(wav)).toBe(true)
    const log = s.blob.multipart.find((m: { uploadId: string }) => m.uploadId === result.uploadId)
    expect(log.kind).toBe('presigned')
    expect(log.partCalls).toBe(5) // part 2 twice
    expect(log.parts.map((p: { partNumber: number }) => p.partNumber)).toEqual([1, 2, 3, 4])
    expect(log.parts.map((p: { size: number }) => p.size)).toEqual([PART, PART, PART, wav.length - 3 * PART])
    expect(result.progress.at(-1)).toBe(wav.length)
    expect(errors).toEqual([])
  } finally {
    s.blob.state.holdWebhooks = false
    await s.blob.releaseWebhooks()
  }
})
