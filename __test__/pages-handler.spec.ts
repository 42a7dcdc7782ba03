// createPagesAudioHandler: playback from a Pages Router API route, on Node's own http server as
// Next runs one (req.query carries the dynamic segment). What it is for: the answer keeps its
// Content-Length on the wire, which Next drops from App Router responses (stack/route-server.mjs
// with nextFraming does what Next does) and without which WebKit does not seek.
import fs from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createPagesAudioHandler } from '../index.js'
import { errorOf, startStack, until, type Stack } from './helpers'

let s: Stack
let alice: string
let sessionId: string
let server: http.Server
let base: string
let failures: unknown[] = []
let started = 0
let settled = 0

const BIG = 32 * 1024 * 1024

beforeAll(async () => {
  s = await startStack()
  alice = await s.clerk.sessionToken({ sub: 'user_alice' })
  sessionId = await s.session('user_alice')
  fs.writeFileSync(path.join(s.root, 'big.wav'), Buffer.concat([s.wav, Buffer.alloc(BIG - s.wav.length, 7)]))
  const playback = createPagesAudioHandler(s.options())
  server = http.createServer((req, res) => {
    const m = /^\/api\/listening-sessions\/([^/]+)\/playback/.exec(req.url ?? '')
    const query = m ? { sessionId: decodeURIComponent(m[1]) } : {}
    started++
    playback(Object.assign(req, { query }), res)
      .catch((err) => {
        failures.push(err)
        res.destroy()
      })
      .finally(() => settled++)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve))
  await s.close()
})

/** The raw answer: status, headers as sent on the wire, body. */
function raw(id: string, { method = 'GET', headers = {} as Record<string, string> } = {}) {
  return new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
    const req = http.request(`${base}/api/listening-sessions/${id}/playback`, { method, headers }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

const auth = () => ({ authorization: `Bearer ${alice}` })

describe('createPagesAudioHandler', () => {
  it('streams the whole file with its Content-Length on the wire, not chunked', async () => {
    const res = await raw(sessionId, { headers: auth() })
    expect(res.status).toBe(200)
    expect(res.headers['content-length']).toBe(String(s.wav.length))
    expect(res.headers['transfer-encoding']).toBeUndefined()
    expect(res.headers['accept-ranges']).toBe('bytes')
    expect(res.headers['content-type']).toBe('audio/wav')
    expect(res.body.equals(s.wav)).toBe(true)
  })

  it('answers a Range with 206, Content-Range and the part’s Content-Length', async () => {
    const res = await raw(sessionId, { headers: { ...auth(), range: 'bytes=1000-' } })
    expect(res.status).toBe(206)
    expect(res.headers['content-range']).toBe(`bytes 1000-${s.wav.length - 1}/${s.wav.length}`)
    expect(res.headers['content-length']).toBe(String(s.wav.length - 1000))
    expect(res.body.equals(s.wav.subarray(1000))).toBe(true)
  })

  it('answers HEAD with the length and no body', async () => {
    const res = await raw(sessionId, { method: 'HEAD', headers: auth() })
    expect(res.status).toBe(200)
    expect(res.headers['content-length']).toBe(String(s.wav.length))
    expect(res.body.length).toBe(0)
  })

  it('refuses as the App Router route does: no token 401, another user 404, POST 405, no session id 400', async () => {
    const bob = await s.clerk.sessionToken({ sub: 'user_bob' })
    const cases: [string, string, Record<string, string>, number][] = [
      [sessionId, 'GET', {}, 401],
      [sessionId, 'GET', { authorization: `Bearer ${bob}` }, 404],
      [sessionId, 'POST', auth(), 405],
    ]
    for (const [id, method, headers, status] of cases) {
      const res = await fetch(`${base}/api/listening-sessions/${id}/playback`, { method, headers })
      expect((await errorOf(res)).status).toBe(status)
    }
    const viaApp = await s.get(sessionId, { headers: {} })
    const viaPages = await fetch(`${base}/api/listening-sessions/${sessionId}/playback`)
    expect((await errorOf(viaPages)).code).toBe((await errorOf(viaApp)).code)
    const noId = await fetch(`${base}/elsewhere`, { headers: auth() })
    expect((await errorOf(noId)).status).toBe(400)
  })

  it('a player that drops a long answer (as on every seek) leaves the server serving the next one', async () => {
    const bigId = await s.session('user_alice', '/audio/big.wav')
    const dropped = new AbortController()
    const res = await fetch(`${base}/api/listening-sessions/${bigId}/playback`, {
      headers: auth(),
      signal: dropped.signal,
    })
    expect(res.headers.get('content-length')).toBe(String(BIG))
    const reader = res.body!.getReader()
    const first = await reader.read()
    expect(first.done).toBe(false)
    dropped.abort()
    await reader.cancel().catch(() => {})
    const next = await raw(bigId, { headers: { ...auth(), range: 'bytes=0-15' } })
    expect(next.status).toBe(206)
    expect(next.body.equals(s.wav.subarray(0, 16))).toBe(true)
    // Every call settled: the dropped one did not wait on its gone socket for a drain.
    expect(await until(() => settled === started, 3000)).toBe(true)
    expect(failures).toEqual([])
  })
  it('a player that drops the request while it is being checked: the handler settles at once, the stream is let go', async () => {
    const bigId = await s.session('user_alice', '/audio/big.wav')
    // Each lookup of a fresh handler goes to Convex; held there, the drop lands before the answer.
    const fresh = createPagesAudioHandler(s.options())
    const slow = http.createServer((req, res) => {
      started++
      fresh(Object.assign(req, { query: { sessionId: bigId } }), res)
        .catch((err) => failures.push(err))
        .finally(() => settled++)
    })
    await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve))
    const before = { started, settled }
    s.convex.state.delayRunMs = { query: 400 }
    try {
      for (let i = 0; i < 3; i++) {
        const req = http.request(`http://127.0.0.1:${(slow.address() as AddressInfo).port}/`, { headers: auth() })
        req.on('error', () => {})
        req.end()
        setTimeout(() => req.destroy(), 50)
      }
      expect(await until(() => started - before.started === 3, 2000)).toBe(true)
      // Well before any upstream or idle timeout (15 s): the handler does not wait on a gone socket.
      expect(await until(() => settled - before.settled === 3, 3000)).toBe(true)
    } finally {
      s.convex.state.delayRunMs = {}
      await new Promise((resolve) => slow.close(resolve))
    }
    expect(failures).toEqual([])
  })

  it('takes the id from [id] as the App Router route does, and the headers Next hands over (req.headers)', async () => {
    const playback = createPagesAudioHandler(s.options())
    const other = http.createServer((req, res) => {
      // As Next's middleware overrides do: req.headers changed, rawHeaders left as the client sent them.
      req.headers.authorization = `Bearer ${alice}`
      playback(Object.assign(req, { query: { id: sessionId } }), res).catch((err) => failures.push(err))
    })
    await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve))
    try {
      const res = await fetch(`http://127.0.0.1:${(other.address() as AddressInfo).port}/`, {
        headers: { range: 'bytes=0-9' },
      })
      expect(res.status).toBe(206)
      expect(Buffer.from(await res.arrayBuffer()).equals(s.wav.subarray(0, 10))).toBe(true)
    } finally {
      await new Promise((resolve) => other.close(resolve))
    }
  })
})
