// The recorder of `session-audio/client` in Debian's Chromium with the fake microphone: real
// MediaRecorder, real IndexedDB in a persistent profile, the real route (the addon) on a route
// server that adds Vercel's per-request OIDC token, and the local Blob store (presigned uploads).
// The page imports client.mjs (and with it client/recorder/) as a browser would from the package.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import send from 'send'
import { chromium, type BrowserContext, type Page } from 'playwright-core'
import { startRouteServer } from '../stack/route-server.mjs'
import { AUTOPLAY_ARG, CHROMIUM, FAKE_MEDIA_ARGS, QUIET_ARGS, requireChromium } from '../stack/chromium.mjs'
import { sineWav } from '../stack/wav.mjs'
import { createAudioHandlers, type AudioOptions } from '../index.js'
import { startStack, type Stack } from '../__test__/helpers'

const ROOT = path.resolve(__dirname, '..')
const PAGE = `<!doctype html><meta charset=utf-8><title>recorder</title><audio id=player controls preload=metadata></audio>
<script type=module>window.client = await import('/client.mjs'); window.upload = await import('/client.mjs'); window.ready = true</script>`

let s: Stack
let route: Awaited<ReturnType<typeof startRouteServer>>
let context: BrowserContext
let profile: string
let platformOidc: string | null = null
const handlers: Record<string, any> = {}
/** Every `session-audio.complete-upload` the route answered: which blob, and the answer. */
type Completion = { sessionId: string; url: string; status: number; code?: string; final?: boolean }
const completions: Completion[] = []
/** Runs before the route sees a completion: a test's hand on the clock or on the store. */
let beforeCompletion: ((c: { sessionId: string; url: string }) => Promise<void>) | null = null
/** The route as the app mounts it, with completions recorded (and held when a test says so). */
const routeHandlers = {
  GET: (req: Request, ctx: unknown) => handlers.GET(req, ctx),
  HEAD: (req: Request, ctx: unknown) => handlers.HEAD(req, ctx),
  POST: async (req: Request, ctx: { params: Promise<{ sessionId: string }> }) => {
    if (!/json/.test(req.headers.get('content-type') ?? '')) return handlers.POST(req, ctx)
    const text = await req.text()
    let event: any = null
    try {
      event = JSON.parse(text)
    } catch {}
    const same = new Request(req.url, { method: 'POST', headers: req.headers, body: text, signal: req.signal })
    if (event?.type !== 'session-audio.complete-upload') return handlers.POST(same, ctx)
    const { sessionId } = await ctx.params
    const url = String(event.payload?.url)
    await beforeCompletion?.({ sessionId, url })
    const res: Response = await handlers.POST(same, ctx)
    const body = await res
      .clone()
      .json()
      .catch(() => null)
    completions.push({ sessionId, url, status: res.status, code: body?.error?.code, final: body?.error?.final })
    return res
  },
}
const use = (extra: AudioOptions = {}) =>
  Object.assign(
    handlers,
    createAudioHandlers(s.oidcOptions({ blobCallbackUrl: route.url, logLevel: 'warn', ...extra })),
  )

beforeAll(async () => {
  requireChromium()
  s = await startStack()
  platformOidc = s.blob.oidcToken()
  route = await startRouteServer({
    handlers: routeHandlers as never,
    requestHeaders: () => (platformOidc ? { 'x-vercel-oidc-token': platformOidc } : {}),
    fallback: (req: any, res: any) => {
      const url = new URL(req.url, 'http://x')
      if (url.pathname === '/') {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
        return res.end(PAGE)
      }
      if (!url.pathname.startsWith('/client/') && url.pathname !== '/client.mjs') {
        res.writeHead(404)
        return res.end()
      }
      send(req, url.pathname, { root: ROOT }).pipe(res)
    },
  })
  use()
  profile = fs.mkdtempSync(path.join(os.tmpdir(), 'session-audio-recorder-'))
  context = await launch()
})

afterAll(async () => {
  await context?.close()
  await route?.close()
  await s?.close()
  if (profile) fs.rmSync(profile, { recursive: true, force: true })
})

/** resumeSessionUploads() in `page`: each journaled session's result, or its error's code. */
function resumeAll(page: Page) {
  return page.evaluate(() =>
    (window as any).client.resumeSessionUploads().then((all: any[]) =>
      all.map((o) => ({
        sessionId: o.sessionId,
        result: o.result,
        error: o.error && String(o.error.code ?? o.error),
      })),
    ),
  )
}

/** Sign `ctx` in as `sub`: Clerk's session cookie, as the app would have it. */
async function signIn(ctx: BrowserContext, sub: string) {
  const token = await s.clerk.sessionToken({ sub, claims: { exp: Math.floor(Date.now() / 1000) + 3600 } })
  await ctx.addCookies([{ name: '__session', value: token, url: route.url }])
}

/** Chromium on the test profile (IndexedDB survives closing it), fake microphone. */
async function launch(dir = profile) {
  const ctx = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM,
    args: [...QUIET_ARGS, ...FAKE_MEDIA_ARGS, AUTOPLAY_ARG],
    headless: true,
  })
  await signIn(ctx, 'user_alice')
  return ctx
}

async function openPage(ctx = context): Promise<Page> {
  const page = await ctx.newPage()
  await page.goto(`${route.url}/`)
  await page.waitForFunction(() => (window as any).ready === true)
  return page
}

const recording = () => s.session('user_alice', null, { status: 'recording' })

/**
 * The browser's multipart uploads since the store's log held `before` entries (not the ones the
 * route makes at `<name>.final.<ext>` when it rewrites a provisional upload into the final file).
 */
const browserUploads = (before: number) =>
  s.blob.multipart.slice(before).filter((m: { pathname: string }) => !m.pathname.includes('.final.'))

/** Start a recorder in `page` (kept as window.r) with these options. */
async function startRecorder(page: Page, sessionId: string, options: Record<string, unknown> = {}) {
  await page.evaluate(
    async ([id, opts]) => {
      const w = window as any
      w.events = { states: [] as string[], progress: [] as unknown[], errors: [] as unknown[] }
      w.r = w.client.createSessionRecorder(id, {
        ...opts,
        onStateChange: (st: string) => w.events.states.push(st),
        onProgress: (p: unknown) => w.events.progress.push(p),
        onError: (e: any) => w.events.errors.push({ code: e?.code, message: String(e?.message ?? e) }),
      })
      await w.r.start()
    },
    [sessionId, { blobApiUrl: s.blob.apiUrl, ...options }] as const,
  )
}

const stopRecorder = (page: Page) =>
  page.evaluate(async () => {
    const w = window as any
    try {
      return { result: await w.r.stop(), stats: w.r.stats, events: w.events }
    } catch (e: any) {
      return {
        error: { status: e?.status, code: e?.code, message: String(e?.message ?? e) },
        stats: w.r.stats,
        events: w.events,
      }
    }
  })

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** The player on the GET route: its duration at loadedmetadata, and whether a seek plays on. */
async function playBack(page: Page, sessionId: string, seekTo: number) {
  return page.evaluate(
    async ([id, t]) => {
      const a = document.querySelector('#player') as HTMLAudioElement
      a.src = `/api/listening-sessions/${id}/audio`
      await new Promise((r, j) => {
        a.addEventListener('loadedmetadata', r, { once: true })
        a.addEventListener('error', () => j(new Error('audio error')), { once: true })
      })
      const duration = a.duration
      const seekEnd = a.seekable.length ? a.seekable.end(a.seekable.length - 1) : 0
      a.currentTime = t
      await new Promise((r) => a.addEventListener('seeked', r, { once: true }))
      const from = a.currentTime
      a.muted = true
      await a.play()
      const t0 = performance.now()
      while (a.currentTime < from + 0.4 && performance.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 50))
      a.pause()
      return { duration, seekEnd, from, now: a.currentTime }
    },
    [sessionId, seekTo] as const,
  )
}

describe('createSessionRecorder in Chromium', () => {
  it('records 20 s and stops: the stored WebM has a finite duration within 1 % of the measured one, and a seek to 15 s plays on', async () => {
    const page = await openPage()
    const id = await recording()
    await startRecorder(page, id)
    await wait(20_000)
    const { result, error, events } = await stopRecorder(page)
    expect(error).toBeUndefined()
    expect(result).toMatchObject({
      sessionId: id,
      status: 'transcribing',
      contentType: expect.stringMatching(/^audio\/webm/),
    })
    expect(result.durationMs).toBeGreaterThan(19_000)
    expect(events.states).toEqual(['starting', 'recording', 'stopping', 'uploading', 'done'])
    const played = await playBack(page, id, 15)
    expect(Number.isFinite(played.duration)).toBe(true)
    expect(Math.abs(played.duration * 1000 - result.durationMs) / result.durationMs).toBeLessThan(0.01)
    expect(played.seekEnd).toBeGreaterThan(19)
    expect(played.from).toBeCloseTo(15, 0)
    expect(played.now).toBeGreaterThan(played.from + 0.2)
    // The journal is gone once the route confirmed the attach.
    expect(await page.evaluate(() => (window as any).client.pendingSessionUploads())).toEqual([])
    await page.close()
  })

  it('uploads equal 5 MiB-style parts while recording (small parts here), part 1 first, none twice, holding at most 2 parts in memory', async () => {
    const page = await openPage()
    const id = await recording()
    const partSizeBytes = 96 * 1024
    const mpuBefore = s.blob.multipart.length
    await startRecorder(page, id, { partSizeBytes, audioBitsPerSecond: 128_000 })
    await wait(24_000)
    const stopAt = Date.now()
    const { result, error, stats } = await stopRecorder(page)
    expect(error).toBeUndefined()
    expect(result.status).toBe('transcribing')
    const uploads = browserUploads(mpuBefore)
    expect(uploads).toHaveLength(1)
    const parts = uploads[0].parts as { partNumber: number; size: number; startedAt: number }[]
    const sorted = [...parts].sort((a, b) => a.partNumber - b.partNumber)
    expect(sorted.length).toBeGreaterThanOrEqual(3)
    for (const p of sorted.slice(0, -1)) expect(p.size).toBe(partSizeBytes)
    // Parts went up while recording, part 1 (with the provisional header region) first and before
    // Stop; every part once, in ascending order, so after Stop only what had not gone up.
    expect(parts.filter((p) => p.startedAt < stopAt).length).toBeGreaterThanOrEqual(2)
    expect(parts[0].partNumber).toBe(1)
    expect(parts[0].startedAt).toBeLessThan(stopAt)
    expect(parts.map((p) => p.partNumber)).toEqual(sorted.map((_, i) => i + 1))
    expect(stats.partsBeforeStop).toBeGreaterThanOrEqual(1)
    expect(stats.maxHeldBytes).toBeGreaterThan(0)
    expect(stats.maxHeldBytes).toBeLessThanOrEqual(2 * partSizeBytes)
    await page.close()
  })

  it('a renderer crash at 30 s: the next page resumes from the journal, reusing the parts already stored, and the session reaches transcribing with ≥ 27 s', async () => {
    const page = await openPage()
    const id = await recording()
    const partSizeBytes = 96 * 1024
    const mpuBefore = s.blob.multipart.length
    await startRecorder(page, id, { partSizeBytes, audioBitsPerSecond: 128_000 })
    await wait(30_000)
    const cdp = await context.newCDPSession(page)
    cdp.send('Page.crash').catch(() => {}) // the renderer dies; its answer never comes
    await page.waitForEvent('crash', { timeout: 10_000 }).catch(() => {})
    const sentBeforeCrash = (browserUploads(mpuBefore)[0]?.parts ?? []).map((p: { partNumber: number }) => p.partNumber)
    expect(sentBeforeCrash.length).toBeGreaterThanOrEqual(2)
    // Part 1 went up while recording (with the provisional header region): resuming keeps it.
    expect(sentBeforeCrash).toContain(1)
    await page.close().catch(() => {})

    const next = await openPage()
    const pending = await next.evaluate(() => (window as any).client.pendingSessionUploads())
    expect(pending.map((p: { sessionId: string }) => p.sessionId)).toContain(id)
    const outcomes = await resumeAll(next)
    const mine = outcomes.find((o: { sessionId: string }) => o.sessionId === id)
    expect(mine?.error).toBeUndefined()
    expect(mine?.result).toMatchObject({ sessionId: id, status: 'transcribing' })
    expect(mine.result.durationMs).toBeGreaterThanOrEqual(27_000)
    const doc = await s.convex.getSession(id)
    expect(doc).toMatchObject({ status: 'transcribing', durationMs: mine.result.durationMs })
    // One multipart upload, continued: every part stored before the crash was not sent again.
    const uploads = browserUploads(mpuBefore)
    expect(uploads).toHaveLength(1)
    const sends = uploads[0].parts.map((p: { partNumber: number }) => p.partNumber)
    for (const n of new Set(sentBeforeCrash)) expect(sends.filter((m: number) => m === n)).toHaveLength(1)
    expect(await next.evaluate(() => (window as any).client.pendingSessionUploads())).toEqual([])
    const played = await playBack(next, id, 20)
    expect(Math.abs(played.duration * 1000 - doc.durationMs) / doc.durationMs).toBeLessThan(0.01)
    await next.close()
  })

  it('a reload mid-recording: the next load resumes it and the session reaches transcribing with all but the last second', async () => {
    const page = await openPage()
    const id = await recording()
    await startRecorder(page, id)
    await wait(12_000)
    await page.reload()
    await page.waitForFunction(() => (window as any).ready === true)
    const outcomes = await resumeAll(page)
    const mine = outcomes.find((o: { sessionId: string }) => o.sessionId === id)
    expect(mine?.result).toMatchObject({ sessionId: id, status: 'transcribing' })
    expect(mine.result.durationMs).toBeGreaterThanOrEqual(10_000)
    await page.close()
  })

  it('offline from 10 s to 25 s of a 40 s recording: uploads wait and resume; the stored audio is the whole 40 s', async () => {
    const page = await openPage()
    const id = await recording()
    const partSizeBytes = 96 * 1024
    const mpuBefore = s.blob.multipart.length
    await startRecorder(page, id, { partSizeBytes, audioBitsPerSecond: 128_000 })
    await wait(10_000)
    await context.setOffline(true)
    const offlineAt = Date.now()
    await wait(15_000)
    const onlineAt = Date.now()
    await context.setOffline(false)
    await wait(15_000)
    const { result, error, events } = await stopRecorder(page)
    expect(error).toBeUndefined()
    expect(events.errors).toEqual([])
    expect(result.durationMs).toBeGreaterThanOrEqual(39_000)
    // Nothing reached the store while offline; parts went up before and after.
    const parts = browserUploads(mpuBefore)[0].parts as { partNumber: number; startedAt: number }[]
    expect(parts.some((p) => p.startedAt > offlineAt + 500 && p.startedAt < onlineAt - 500)).toBe(false)
    expect(parts.some((p) => p.partNumber !== 1 && p.startedAt >= onlineAt)).toBe(true)
    await page.close()
  })

  it('grants outlive a short token TTL: they are re-minted while recording, and the recording completes', async () => {
    use({ clientTokenTtlMs: 4000 })
    try {
      const page = await openPage()
      const id = await recording()
      const issued = s.blob.signedTokens.length
      await startRecorder(page, id, { partSizeBytes: 64 * 1024, audioBitsPerSecond: 128_000 })
      await wait(16_000)
      const duringRecording = s.blob.signedTokens.length - issued
      const { result, error } = await stopRecorder(page)
      expect(error).toBeUndefined()
      expect(result.status).toBe('transcribing')
      expect(duringRecording).toBeGreaterThanOrEqual(2)
      await page.close()
    } finally {
      use()
    }
  })

  it('a full quota is reported (journal_quota_exceeded): the recording goes on in memory, and all of it is sent', async () => {
    // A profile of its own: Chromium counts deleted journals against the quota until it collects
    // them, so the others' would make the room left unpredictable.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'session-audio-quota-'))
    const own = await launch(dir)
    const page = await openPage(own)
    const cdp = await own.newCDPSession(page)
    const origin = route.url
    const { usage } = await cdp.send('Storage.getUsageAndQuota', { origin })
    await cdp.send('Storage.overrideQuotaForOrigin', { origin, quotaSize: usage + 120 * 1024 })
    try {
      const id = await recording()
      await startRecorder(page, id, { audioBitsPerSecond: 128_000 })
      await page.waitForFunction(
        () => (window as any).events.errors.some((e: { code: string }) => e.code === 'journal_quota_exceeded'),
        null,
        { timeout: 60_000 },
      )
      const spilledAt = await page.evaluate(() => (window as any).events.progress.at(-1)?.recordedMs ?? 0)
      // The recording goes on, in memory.
      await wait(3_000)
      expect(await page.evaluate(() => (window as any).r.state)).toBe('recording')
      expect(await page.evaluate(() => (window as any).r.stats.journal)).toBe('memory')
      const { result, error, events } = await stopRecorder(page)
      expect(error, JSON.stringify({ error, errors: events.errors, states: events.states })).toBeUndefined()
      expect(events.errors).toHaveLength(1)
      expect(events.errors[0].message).toMatch(/goes on in memory.*reload.*loses/)
      expect(await page.evaluate(() => (window as any).r.error)).toBeNull()
      expect(result).toMatchObject({ sessionId: id, status: 'transcribing' })
      expect(result.durationMs).toBeGreaterThan(spilledAt + 2_000)
      // Finalised: seekable too.
      const played = await playBack(page, id, 0.5)
      expect(Number.isFinite(played.duration)).toBe(true)
      expect(Math.abs(played.duration * 1000 - result.durationMs) / result.durationMs).toBeLessThan(0.01)
    } finally {
      await cdp.send('Storage.overrideQuotaForOrigin', { origin }).catch(() => {})
      await own.close()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it('maxDurationMs stops by itself, pauses do not count, and the answer is the route attach', async () => {
    const page = await openPage()
    const id = await recording()
    await startRecorder(page, id, { maxDurationMs: 5000 })
    await wait(2000)
    await page.evaluate(() => (window as any).r.pause())
    await wait(3000)
    await page.evaluate(() => (window as any).r.resume())
    await page.waitForFunction(() => (window as any).r.state === 'done', null, { timeout: 20_000 })
    const { result, events } = await stopRecorder(page)
    expect(events.states).toEqual(['starting', 'recording', 'paused', 'recording', 'stopping', 'uploading', 'done'])
    expect(result).toMatchObject({ sessionId: id, status: 'transcribing' })
    // About 5 s of audio although it ran for 8 s: the pause is not in it.
    expect(result.durationMs).toBeGreaterThan(4000)
    expect(result.durationMs).toBeLessThan(6500)
    await page.close()
  })

  it('pending journals are listed, discarded one by one, cancelled recordings leave none, and a session that moved on ends its journal with 409', async () => {
    const page = await openPage()
    const [moved, dropped, cancelled] = [await recording(), await recording(), await recording()]
    // Two recordings journaled and left unfinished (the tab went away mid-recording).
    for (const id of [moved, dropped]) {
      await startRecorder(page, id)
      await wait(2500)
      await page.reload()
      await page.waitForFunction(() => (window as any).ready === true)
    }
    const pending = await page.evaluate(() => (window as any).client.pendingSessionUploads())
    expect(pending.map((p: { sessionId: string }) => p.sessionId).sort()).toEqual([moved, dropped].sort())
    expect(pending.every((p: { bytes: number }) => p.bytes > 0)).toBe(true)
    await page.evaluate((id) => (window as any).client.discardSessionUpload(id), dropped)
    // The session moved on meanwhile: the route refuses, the journal ends, the outcome says why.
    await s.convex.run((ctx: any) => ctx.db.patch(moved, { status: 'transcribing' }))
    const outcomes = await page.evaluate(() =>
      (window as any).client
        .resumeSessionUploads()
        .then((all: any[]) =>
          all.map((o) => ({ sessionId: o.sessionId, status: o.error?.status, code: o.error?.code })),
        ),
    )
    expect(outcomes).toEqual([{ sessionId: moved, status: 409, code: 'invalid_session_state' }])
    expect(await page.evaluate(() => (window as any).client.pendingSessionUploads())).toEqual([])
    // cancel(): nothing uploaded, nothing journaled.
    await startRecorder(page, cancelled)
    await wait(1500)
    await page.evaluate(() => (window as any).r.cancel())
    expect(await page.evaluate(() => (window as any).r.state)).toBe('cancelled')
    expect(await page.evaluate(() => (window as any).client.pendingSessionUploads())).toEqual([])
    expect((await s.convex.getSession(cancelled)).status).toBe('recording')
    await page.close()
  })

  it("records audio/mp4 (Chromium's fragmented MP4, as Safari records): the stored file has a finite duration within 1 % of the measured one, and a seek plays on", async () => {
    const page = await openPage()
    const id = await recording()
    await startRecorder(page, id, { mimeType: 'audio/mp4' })
    await wait(12_000)
    const { result, error } = await stopRecorder(page)
    expect(error).toBeUndefined()
    expect(result).toMatchObject({
      sessionId: id,
      status: 'transcribing',
      contentType: expect.stringMatching(/^audio\/mp4/),
    })
    expect(result.durationMs).toBeGreaterThan(11_000)
    const played = await playBack(page, id, 8)
    expect(Number.isFinite(played.duration)).toBe(true)
    expect(Math.abs(played.duration * 1000 - result.durationMs) / result.durationMs).toBeLessThan(0.01)
    expect(played.seekEnd).toBeGreaterThan(11)
    expect(played.from).toBeCloseTo(8, 0)
    expect(played.now).toBeGreaterThan(played.from + 0.2)
    await page.close()
  })

  it('the microphone going away (the track ends) finishes the recording by itself', async () => {
    const page = await openPage()
    const id = await recording()
    await page.evaluate(async () => {
      const w = window as any
      w.mic = await navigator.mediaDevices.getUserMedia({ audio: true })
    })
    await page.evaluate(
      async ([sessionId, api]) => {
        const w = window as any
        w.events = { states: [] as string[], progress: [], errors: [] as unknown[] }
        w.r = w.client.createSessionRecorder(sessionId, {
          stream: w.mic,
          blobApiUrl: api,
          onStateChange: (st: string) => w.events.states.push(st),
          onError: (e: any) => w.events.errors.push({ code: e?.code, message: String(e?.message ?? e) }),
        })
        await w.r.start()
      },
      [id, s.blob.apiUrl] as const,
    )
    await wait(4000)
    await page.evaluate(() => (window as any).mic.getTracks().forEach((t: MediaStreamTrack) => t.stop()))
    await page.waitForFunction(() => ['done', 'failed'].includes((window as any).r.state), null, { timeout: 20_000 })
    const { result, error } = await stopRecorder(page)
    expect(error).toBeUndefined()
    expect(result).toMatchObject({ sessionId: id, status: 'transcribing' })
    expect(result.durationMs).toBeGreaterThan(3000)
    await page.close()
  })

  it('parts failing while recording are reported and retried; stop() sends them and completes', async () => {
    const page = await openPage()
    const id = await recording()
    const mpuBefore = s.blob.multipart.length
    s.blob.state.fail = { kind: 'mpu-part', status: 503, code: 'service_unavailable', sticky: true }
    try {
      await startRecorder(page, id, {
        partSizeBytes: 64 * 1024,
        audioBitsPerSecond: 128_000,
        retry: { attempts: 2, baseMs: 100, maxMs: 400 },
      })
      await page.waitForFunction(() => (window as any).events.errors.length > 0, null, { timeout: 30_000 })
    } finally {
      s.blob.state.fail = null
    }
    // Part 1 now goes up (and fails) when it fills, about 4 s in: record on until the recording
    // makes at least three parts (the live retry waits 10 s, so stop() sends them).
    await wait(7000)
    const { result, error, events } = await stopRecorder(page)
    expect(error).toBeUndefined()
    expect(events.errors[0].code).toBe('storage_failed')
    expect(result).toMatchObject({ sessionId: id, status: 'transcribing' })
    const parts = browserUploads(mpuBefore)[0].parts as { partNumber: number }[]
    expect(new Set(parts.map((p) => p.partNumber)).size).toBeGreaterThanOrEqual(3)
    await page.close()
  })

  it('a completion the route could not take (Convex down) stays journaled; the next load completes it', async () => {
    const page = await openPage()
    const id = await recording()
    await startRecorder(page, id, { partSizeBytes: 96 * 1024, audioBitsPerSecond: 128_000 })
    await wait(8000)
    s.blob.state.holdWebhooks = true
    s.convex.state.fail = { kind: 'mutation', status: 503, sticky: true }
    let failed: any
    try {
      failed = await stopRecorder(page)
    } finally {
      s.convex.state.fail = null
    }
    // The route answered 502 while Convex was down; once a probe got through, its attach failed and
    // it dropped the blob (404 upload_not_found). Either way the audio is still in the journal.
    expect([404, 502, 503]).toContain(failed.error?.status)
    const pending = await page.evaluate(() => (window as any).client.pendingSessionUploads())
    expect(pending.map((p: { sessionId: string }) => p.sessionId)).toContain(id)
    use() // a new handler: no breaker left open by the outage
    const outcomes = await resumeAll(page)
    const mine = outcomes.find((o: { sessionId: string }) => o.sessionId === id)
    expect(mine?.error).toBeUndefined()
    expect(mine?.result).toMatchObject({ sessionId: id, status: 'transcribing' })
    expect(mine.result.durationMs).toBeGreaterThan(7000)
    expect(await page.evaluate(() => (window as any).client.pendingSessionUploads())).toEqual([])
    s.blob.state.holdWebhooks = false
    await s.blob.releaseWebhooks()
    await page.close()
  })

  it('partSizeBytes below 5 MiB is refused for Vercel Blob (allowed only on a local store), and discarding a journal a tab is recording is refused', async () => {
    const page = await openPage()
    const refused = await page.evaluate(() => {
      try {
        ;(window as any).client.createSessionRecorder('x', { partSizeBytes: 1024 * 1024 })
        return null
      } catch (e: any) {
        return String(e.message)
      }
    })
    expect(refused).toMatch(/at least 5 MiB/)
    const id = await recording()
    await startRecorder(page, id)
    await wait(1500)
    const other = await openPage()
    const err = await other.evaluate(
      (sid) =>
        (window as any).client.discardSessionUpload(sid).then(
          () => null,
          (e: any) => e.code,
        ),
      id,
    )
    expect(err).toBe('recording_in_progress')
    const { result } = await stopRecorder(page)
    expect(result.status).toBe('transcribing')
    await other.close()
    await page.close()
  })

  it('journals live in the database named by dbName (one per user on a shared browser)', async () => {
    const page = await openPage()
    const id = await recording()
    await startRecorder(page, id, { dbName: 'session-audio-user_alice' })
    await wait(2500)
    await page.reload()
    await page.waitForFunction(() => (window as any).ready === true)
    const [shared, own] = await page.evaluate(async () => {
      const c = (window as any).client
      return [await c.pendingSessionUploads(), await c.pendingSessionUploads({ dbName: 'session-audio-user_alice' })]
    })
    expect(shared).toEqual([])
    expect(own.map((p: { sessionId: string }) => p.sessionId)).toEqual([id])
    const outcomes = await page.evaluate(() =>
      (window as any).client
        .resumeSessionUploads({ dbName: 'session-audio-user_alice' })
        .then((all: any[]) => all.map((o) => ({ sessionId: o.sessionId, status: o.result?.status }))),
    )
    expect(outcomes).toEqual([{ sessionId: id, status: 'transcribing' }])
    await page.close()
  })
})

describe('the completion rule: upload again, retry outages, one user per journal', () => {
  /** The answers the route gave to `id`'s completions, in order. */
  const answers = (id: string) => completions.filter((c) => c.sessionId === id)

  /** Hold `id`'s first completion in `during` (its blob stored, the route not told yet). */
  const holdFirstCompletion = (id: string, during: (url: string) => Promise<void>) => {
    let held = false
    beforeCompletion = async (c) => {
      if (c.sessionId !== id || held) return
      held = true
      await during(c.url)
    }
  }

  /** Record `ms` of audio and stop; Blob's webhooks held, so the browser's completion decides. */
  async function recordAndStop(id: string, ms: number, options: Record<string, unknown> = {}) {
    const page = await openPage()
    await startRecorder(page, id, options)
    await wait(ms)
    const stopped = await stopRecorder(page)
    return { page, ...stopped }
  }

  async function releaseHeldWebhooks() {
    s.blob.state.holdWebhooks = false
    await s.blob.releaseWebhooks()
  }

  it('a completion answered 400 upload_expired (the stored blob outlived its grant): the recorder sends the recording again and the session reaches transcribing', async () => {
    // Grants live 3 s, so a blob 3 s old is past what a completion may attach.
    use({ clientTokenTtlMs: 3000 })
    s.blob.state.holdWebhooks = true
    const id = await recording()
    // The completion is late: the clock passes the grant's lifetime before the route sees it.
    holdFirstCompletion(id, () => wait(4500))
    try {
      const { page, result, error, events } = await recordAndStop(id, 4000)
      expect(error).toBeUndefined()
      expect(result).toMatchObject({ sessionId: id, status: 'transcribing' })
      expect(result.durationMs).toBeGreaterThan(3000)
      const seen = answers(id)
      expect(seen.map((c) => [c.status, c.code])).toEqual([
        [400, 'upload_expired'],
        [201, undefined],
      ])
      // A new upload, not the old blob again.
      expect(seen[1].url).not.toBe(seen[0].url)
      expect(events.errors.map((e: { code: string }) => e.code)).toEqual(['upload_expired'])
      expect((await s.convex.getSession(id)).status).toBe('transcribing')
      expect(await page.evaluate(() => (window as any).client.pendingSessionUploads())).toEqual([])
      await page.close()
    } finally {
      beforeCompletion = null
      use()
      await releaseHeldWebhooks()
    }
  })

  it('a completion stored but never told (the platform failing at Stop) is resumed later as 400 upload_expired: the journal sends the recording again and the session reaches transcribing', async () => {
    use({ clientTokenTtlMs: 3000 })
    s.blob.state.holdWebhooks = true
    const id = await recording()
    // The platform fails every completion while `down` (the route never sees them).
    let down = true
    beforeCompletion = async (c) => {
      if (c.sessionId === id && down) throw new Error('the platform failed')
    }
    try {
      const { page, error } = await recordAndStop(id, 4000)
      expect(error?.status).toBe(500)
      const pending = await page.evaluate(() => (window as any).client.pendingSessionUploads())
      expect(pending).toEqual([expect.objectContaining({ sessionId: id, status: 'completing' })])
      down = false
      // By now the stored blob is older than a grant lives (the retries alone took 7 s).
      const outcomes = await resumeAll(page)
      expect(outcomes).toEqual([{ sessionId: id, result: expect.objectContaining({ status: 'transcribing' }) }])
      const seen = answers(id)
      expect(seen.map((c) => [c.status, c.code])).toEqual([
        [400, 'upload_expired'],
        [201, undefined],
      ])
      expect(seen[1].url).not.toBe(seen[0].url)
      expect(await page.evaluate(() => (window as any).client.pendingSessionUploads())).toEqual([])
      await page.close()
    } finally {
      beforeCompletion = null
      use()
      await releaseHeldWebhooks()
    }
  })

  it('a completion answered 404 upload_not_found (the stored blob deleted before the route saw it): the recorder sends the recording again and the session reaches transcribing', async () => {
    s.blob.state.holdWebhooks = true
    const id = await recording()
    holdFirstCompletion(id, async (url) => {
      const res = await fetch(`${s.blob.apiUrl}/delete`, {
        method: 'POST',
        headers: { authorization: `Bearer ${s.blob.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ urls: [url] }),
      })
      expect(res.status).toBe(200)
    })
    const mpuBefore = s.blob.multipart.length
    try {
      // Multipart (parts of 64 KiB): the re-send is a new multipart upload, not the completed one.
      const { page, result, error } = await recordAndStop(id, 6000, {
        partSizeBytes: 64 * 1024,
        audioBitsPerSecond: 128_000,
      })
      expect(error).toBeUndefined()
      expect(result).toMatchObject({ sessionId: id, status: 'transcribing' })
      expect(result.durationMs).toBeGreaterThan(5000)
      const seen = answers(id)
      expect(seen.map((c) => [c.status, c.code])).toEqual([
        [404, 'upload_not_found'],
        [201, undefined],
      ])
      expect(seen[1].url).not.toBe(seen[0].url)
      const uploads = browserUploads(mpuBefore)
      expect(uploads).toHaveLength(2)
      expect(uploads[1].uploadId).not.toBe(uploads[0].uploadId)
      expect(uploads.every((u: { parts: unknown[] }) => u.parts.length >= 2)).toBe(true)
      expect(await page.evaluate(() => (window as any).client.pendingSessionUploads())).toEqual([])
      await page.close()
    } finally {
      beforeCompletion = null
      await releaseHeldWebhooks()
    }
  })

  it("two users on one browser profile: Bob's page leaves Alice's unfinished recording alone, and Alice, signed in again, resumes it to transcribing", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'session-audio-users-'))
    const shared = await launch(dir) // signed in as Alice
    try {
      const id = await recording()
      const page = await openPage(shared)
      await startRecorder(page, id)
      await wait(4000)
      // Alice's tab dies before the completion.
      const cdp = await shared.newCDPSession(page)
      cdp.send('Page.crash').catch(() => {})
      await page.waitForEvent('crash', { timeout: 10_000 }).catch(() => {})
      await page.close().catch(() => {})

      // Bob signs in on the same profile; his page resumes what it finds.
      await signIn(shared, 'user_bob')
      const bobs = await openPage(shared)
      expect(await bobs.evaluate(() => (window as any).client.pendingSessionUploads())).toEqual([])
      expect(await resumeAll(bobs)).toEqual([])
      const alices = await bobs.evaluate(() => (window as any).client.pendingSessionUploads({ userId: 'user_alice' }))
      // Untouched: still Alice's, still pending, not refused.
      expect(alices).toEqual([expect.objectContaining({ sessionId: id, userId: 'user_alice' })])
      expect(alices[0].status).not.toBe('refused')
      expect(alices[0].refusal).toBeUndefined()
      expect(answers(id)).toEqual([])
      expect((await s.convex.getSession(id)).status).toBe('recording')
      await bobs.close()

      // Alice again: her page resumes it.
      await signIn(shared, 'user_alice')
      const back = await openPage(shared)
      const outcomes = await resumeAll(back)
      expect(outcomes).toEqual([{ sessionId: id, result: expect.objectContaining({ status: 'transcribing' }) }])
      expect(outcomes[0].result.durationMs).toBeGreaterThan(2000)
      expect(await back.evaluate(() => (window as any).client.pendingSessionUploads())).toEqual([])
      await back.close()
    } finally {
      await shared.close()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it("a journal recorded without a user, resumed by another user's page: 404 session_not_found is not final, the journal stays pending and its owner's page finishes it", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'session-audio-nouser-'))
    const shared = await launch(dir) // signed in as Alice
    try {
      const id = await recording()
      const page = await openPage(shared)
      // As a journal written before journals carried a user: every page sees it.
      await startRecorder(page, id, { userId: null })
      await wait(4000)
      await page.reload()
      await page.waitForFunction(() => (window as any).ready === true)
      await page.close()

      await signIn(shared, 'user_bob')
      const bobs = await openPage(shared)
      // Bob's page sends it; the route does not know the session for Bob: not the recording's fault.
      expect(await resumeAll(bobs)).toEqual([{ sessionId: id, result: undefined, error: 'session_not_found' }])
      const pending = await bobs.evaluate(() => (window as any).client.pendingSessionUploads())
      expect(pending).toEqual([expect.objectContaining({ sessionId: id })])
      expect(pending[0].status).not.toBe('refused')
      expect(pending[0].refusal).toBeUndefined()
      await bobs.close()

      await signIn(shared, 'user_alice')
      const back = await openPage(shared)
      const outcomes = await resumeAll(back)
      expect(outcomes).toEqual([{ sessionId: id, result: expect.objectContaining({ status: 'transcribing' }) }])
      expect(await back.evaluate(() => (window as any).client.pendingSessionUploads())).toEqual([])
      await back.close()
    } finally {
      await shared.close()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it('uploadSessionAudio retries a completion the route could not take (Convex answered 503 once) and resolves with the attach', async () => {
    s.blob.state.holdWebhooks = true
    const id = await recording()
    const page = await openPage()
    // The attach mutation fails once: the route cannot attach now (5xx), the client tries again.
    s.convex.state.fail = { kind: 'mutation', status: 503 }
    try {
      const wav = Array.from(sineWav(2))
      const out = await page.evaluate(
        async ([sessionId, bytes, api]) => {
          const blob = new Blob([Uint8Array.from(bytes as number[])], { type: 'audio/wav' })
          try {
            return {
              result: await (window as any).upload.uploadSessionAudio(sessionId, blob, {
                durationMs: 2000,
                blobApiUrl: api,
              }),
            }
          } catch (e: any) {
            return { error: { status: e?.status, code: e?.code, message: String(e?.message ?? e) } }
          }
        },
        [id, wav, s.blob.apiUrl] as const,
      )
      expect(out.error).toBeUndefined()
      expect(out.result).toMatchObject({ sessionId: id, status: 'transcribing' })
      const seen = answers(id)
      // The outage answered 5xx and the same blob's completion was sent again; today's route may
      // drop that blob meanwhile (then 404 upload_not_found, and it goes up once more).
      expect(seen[0].status).toBeGreaterThanOrEqual(500)
      expect(seen[1]).toMatchObject({ url: seen[0].url })
      expect(seen.at(-1)!.status).toBe(201)
      expect(seen.length).toBeGreaterThanOrEqual(2)
    } finally {
      s.convex.state.fail = null
      use() // a new handler: no breaker left open
      await releaseHeldWebhooks()
      await page.close()
    }
  })
})
