// Every upstream answer is read with a cap: a Clerk, Convex or Blob that answers 256 MiB (streamed,
// never held by the test either) is that dependency's failure, answered quickly, while the route's
// process stays small and writes no log line longer than a few KiB (details are cut to 2 KiB).
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { listen } from '../stack/http-util.mjs'
import { errorOf, startStack, type Stack } from './helpers'
import { startRouteProcess, type RouteProcess } from './route-process'

const HUGE = 256 * 1024 * 1024
const MiB = 1024 * 1024

let s: Stack
let huge: Awaited<ReturnType<typeof listen>>
let route: RouteProcess & { lines: string[] }
/** Bytes the huge server managed to send, per answer: far below 256 MiB once the route stops reading. */
const sent: number[] = []

/**
 * Answers every request (after reading its body) with 200 and 256 MiB of valid-looking JSON in the
 * shape the caller expects, written chunk by chunk with backpressure, stopping when the reader goes.
 * Under `/template` it is a Clerk whose JWKS is the stack's and whose template tokens are huge.
 */
async function startHuge() {
  const chunk = Buffer.alloc(64 * 1024, 'x')
  return listen(async (req, res) => {
    for await (const _ of req);
    let url = req.url ?? ''
    if (url.startsWith('/template/')) {
      url = url.slice('/template'.length)
      if (url === '/v1/jwks') {
        const jwks = await fetch(`${s.clerk.url}/v1/jwks`, { headers: { authorization: req.headers.authorization! } })
        res.writeHead(jwks.status, { 'content-type': 'application/json' })
        return res.end(Buffer.from(await jwks.arrayBuffer()))
      }
    }
    const [head, tail] = url.startsWith('/v1/')
      ? ['{"keys":[{"kty":"RSA","kid":"', '"}]}'] // Clerk: the JWKS, or a template token
      : url.startsWith('/api/blob')
        ? ['{"url":"', '","pathname":"p"}'] // Blob: a put's answer
        : ['{"status":"error","errorMessage":"', '"}'] // Convex: a function's error
    res.writeHead(200, { 'content-type': 'application/json' })
    let n = 0
    let gone = false
    res.on('close', () => (gone = true))
    res.write(head)
    while (n < HUGE && !gone) {
      n += chunk.length
      if (!res.write(chunk)) await new Promise((r) => (res.once('drain', r), res.once('close', r)))
    }
    sent.push(n)
    if (!gone) res.end(tail)
  })
}

beforeAll(async () => {
  s = await startStack()
  huge = await startHuge()
  route = await startRouteProcess(
    {
      convex: s.options({ convexUrl: huge.url }),
      clerk: s.options({ clerkApiUrl: huge.url }),
      template: s.options({ clerkApiUrl: `${huge.url}/template` }),
      blob: s.options({ blobApiUrl: `${huge.url}/api/blob` }),
    },
    { stderr: 'read' },
  )
})
afterAll(async () => {
  route?.stop()
  await huge.close()
  await s.close()
})

async function timed(url: string, init: RequestInit = {}) {
  const t0 = performance.now()
  const res = await fetch(url, init)
  const e = await errorOf(res)
  return { ...e, ms: performance.now() - t0 }
}

describe('256 MiB answers', () => {
  it('Convex, Clerk and Blob answering 256 MiB: 502 of that dependency, quickly, with bounded RSS and short log lines', async () => {
    const alice = await s.clerk.sessionToken({ sub: 'user_alice' })
    const id = await s.session('user_alice')
    const before = (await route.stats()).rss
    const auth = { authorization: `Bearer ${alice}` }
    for (let i = 0; i < 3; i++) {
      // Convex's answer to the session query (a breaker then fails the next ones fast, also a 502).
      const convex = await timed(route.route('convex', id), { headers: auth })
      expect([convex.status, convex.code]).toEqual([502, 'convex_unavailable'])
      expect(convex.ms).toBeLessThan(5000)
      // Clerk's JWKS, fetched to verify the session token.
      const clerk = await timed(route.route('clerk', id), { headers: auth })
      expect([clerk.status, clerk.code]).toEqual([502, 'auth_provider_unavailable'])
      expect(clerk.ms).toBeLessThan(5000)
      // Clerk's answer to the Convex template token (the session token verified with its JWKS).
      const template = await timed(route.route('template', id), { headers: auth })
      expect([template.status, template.code]).toEqual([502, 'auth_provider_unavailable'])
      expect(template.ms).toBeLessThan(5000)
    }
    // Blob's answer to the upload's put.
    const recording = await s.session('user_alice', null, { status: 'recording' })
    const blob = await timed(route.route('blob', recording), {
      method: 'POST',
      headers: { ...auth, 'x-duration-ms': '5000', 'x-content-type': 'audio/wav' },
      body: s.wav,
    })
    expect([blob.status, blob.code]).toEqual([502, 'storage_failed'])
    expect(blob.ms).toBeLessThan(5000)

    const after = (await route.stats()).rss
    expect(after - before).toBeLessThan(100 * MiB)
    expect(route.alive()).toBe(true)
    // The route stopped reading each answer early: nothing near 256 MiB was ever sent.
    expect(sent.length).toBeGreaterThan(0)
    for (const n of sent) expect(n).toBeLessThan(64 * MiB)
    // Every failure was logged, and no line is longer than ~4 KiB (the detail is cut to 2 KiB).
    await new Promise((r) => setTimeout(r, 200))
    const failed = route.lines.filter((l) => l.includes('"request failed"'))
    expect(failed.length).toBeGreaterThanOrEqual(10)
    expect(Math.max(...route.lines.map((l) => Buffer.byteLength(l)))).toBeLessThanOrEqual(4096)
    for (const what of ['query listeningSessions:getForAudio: body', 'GET /v1/jwks body', 'template token body'])
      expect(failed.some((l) => l.includes(`${what}: answer over 1 MiB`))).toBe(true)
    expect(failed.some((l) => l.includes('answer over 64 KiB'))).toBe(true) // Blob's metadata cap
  })
})
