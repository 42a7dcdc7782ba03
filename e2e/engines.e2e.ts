// The recorder of `session-audio/client` in each engine it is tested in (e2e/lib/engines.ts):
// Debian's Chromium, Firefox ESR and WebKitGTK (an ephemeral session, as Safari's private browsing).
// One spec body per engine (ONLY_ENGINE=firefox runs one), short recordings: what differs between engines is tested here (the
// journal's value format, the recorded type, a journal that stops taking writes); the long
// real-time recordings run in one engine each (e2e/recorder.e2e.ts, e2e/demo-engines.e2e.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import path from 'node:path'
import send from 'send'
import { startRouteServer } from '../stack/route-server.mjs'
import { createAudioHandlers } from '../index.js'
import { startStack, type Stack } from '../__test__/helpers'
import { ENGINES, launchEngine, type Engine, type EnginePage } from './lib/engines'
import { inPage, type PageResult } from './lib/direct-reader'
import { createFinaliser } from '../client/finalise/finaliser.mjs'

const ROOT = path.resolve(__dirname, '..')
const PAGE = `<!doctype html><meta charset=utf-8><title>recorder</title><audio id=player controls preload=metadata></audio>
<script type=module>window.client = { ...(await import('/client/recorder/recorder.mjs')), ...(await import('/client/recorder/resume.mjs')) }; window.journalModule = await import('/client/recorder/journal.mjs'); window.ready = true</script>`

let s: Stack
let route: Awaited<ReturnType<typeof startRouteServer>>
const handlers: Record<string, unknown> = {}

beforeAll(async () => {
  s = await startStack()
  const platformOidc = s.blob.oidcToken()
  route = await startRouteServer({
    handlers: handlers as never,
    requestHeaders: () => (platformOidc ? { 'x-vercel-oidc-token': platformOidc } : {}),
    fallback: (req: any, res: any) => {
      const url = new URL(req.url, 'http://x')
      if (url.pathname === '/') {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
        return res.end(PAGE)
      }
      if (!url.pathname.startsWith('/client/')) {
        res.writeHead(404)
        return res.end()
      }
      send(req, url.pathname, { root: ROOT }).pipe(res)
    },
  })
  Object.assign(
    handlers,
    createAudioHandlers(
      s.oidcOptions({ blobCallbackUrl: route.url, logLevel: (process.env.E2E_LOG as never) ?? 'warn' }),
    ),
  )
})

afterAll(async () => {
  await route?.close()
  await s?.close()
})

const recording = () => s.session('user_alice', null, { status: 'recording' })
const wait = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Start a recorder in the page (window.r); events collected in window.events. */
function startRecorder(page: EnginePage, sessionId: string, options: Record<string, unknown> = {}) {
  return page.evaluate(
    async ([id, opts]) => {
      const w = window as any
      w.events = { states: [] as string[], errors: [] as unknown[] }
      w.r = w.client.createSessionRecorder(id, {
        ...opts,
        onStateChange: (st: string) => w.events.states.push(st),
        onError: (e: any) =>
          w.events.errors.push({
            code: e?.code,
            message: String(e?.message ?? e),
            recordingContinues: !!e?.recordingContinues,
          }),
      })
      await w.r.start()
      return { type: w.r.mimeType, journal: w.r.stats.journal }
    },
    [sessionId, { blobApiUrl: s.blob.apiUrl, ...options }] as [string, Record<string, unknown>],
  )
}

function stopRecorder(page: EnginePage) {
  return page.evaluate(async () => {
    const w = window as any
    try {
      return { result: await w.r.stop(), stats: { ...w.r.stats }, events: w.events }
    } catch (e: any) {
      return {
        error: { status: e?.status, code: e?.code, message: String(e?.message ?? e) },
        stats: { ...w.r.stats },
        events: w.events,
      }
    }
  }) as Promise<{ result?: any; error?: any; stats: any; events: any }>
}

/** What each engine records by default, and how its journal keeps chunks. */
const EXPECTED: Record<string, { type: RegExp; journal: string }> = {
  chromium: { type: /^audio\/webm;codecs=opus$/, journal: 'blob' },
  firefox: { type: /^audio\/webm;codecs=opus$/, journal: 'blob' },
  // WebKitGTK records fragmented MP4 (AAC) only; its WebDriver session is ephemeral, where
  // IndexedDB refuses Blobs (as Safari's private browsing).
  webkit: { type: /^audio\/mp4/, journal: 'arraybuffer' },
}

for (const name of ENGINES.filter((e) => !process.env.ONLY_ENGINE || e === process.env.ONLY_ENGINE)) {
  describe(`the recorder in ${name}`, () => {
    let engine: Engine
    let page: EnginePage

    beforeAll(async () => {
      engine = await launchEngine(name)
      const token = await s.clerk.sessionToken({
        sub: 'user_alice',
        claims: { exp: Math.floor(Date.now() / 1000) + 3600 },
      })
      await engine.setCookie(route.url, '__session', token)
      page = await engine.newPage()
      await page.goto(`${route.url}/`)
      await page.waitFor(() => (window as any).ready === true)
    })
    afterAll(async () => {
      await page?.close()
      await engine?.close()
    })

    it('the journal stores chunks in a form this engine accepts and reads back either form', async () => {
      const got = await page.evaluate(async () => {
        const J = (window as any).journalModule
        const detected = await J.openJournal({ dbName: 'engines-format' })
        const format = detected.valueFormat
        detected.close()
        // A journal written as ArrayBuffers, then read by a journal that stores Blobs (where the
        // engine takes them): one recording can hold both forms.
        const ab = await J.openJournal({ dbName: 'engines-format', valueFormat: 'arraybuffer' })
        await ab.remove('s1')
        await ab.begin('s1', { note: 'x' })
        await ab.append('s1', 0, new Blob([new Uint8Array([1, 2, 3, 4])]))
        await ab.append('s1', 1, new Uint8Array([5, 6]))
        ab.close()
        const j = await J.openJournal({ dbName: 'engines-format' })
        if (format === 'blob') await j.append('s1', 2, new Blob([new Uint8Array([7, 8, 9])]))
        else await j.append('s1', 2, new Uint8Array([7, 8, 9]))
        const all = [...new Uint8Array(await (await j.read('s1', 0, 9)).arrayBuffer())]
        const middle = [...new Uint8Array(await (await j.read('s1', 3, 8)).arrayBuffer())]
        const entry = await j.get('s1')
        await j.remove('s1')
        j.close()
        return { format, all, middle, bytes: entry.bytes, chunkCount: entry.chunkCount }
      })
      expect(got.format).toBe(EXPECTED[name].journal)
      expect(got.all).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9])
      expect(got.middle).toEqual([4, 5, 6, 7, 8])
      expect(got).toMatchObject({ bytes: 9, chunkCount: 3 })
    })

    it('records ~4 s into the IndexedDB journal and the route attaches it', async () => {
      const id = await recording()
      const started = await startRecorder(page, id)
      expect(started.type).toMatch(EXPECTED[name].type)
      expect(started.journal).toBe(EXPECTED[name].journal)
      await wait(4_000)
      const journaled = await page.evaluate(async (sid) => {
        const J = (window as any).journalModule
        const j = await J.openJournal()
        const entry = await j.get(sid)
        j.close()
        return entry?.chunkCount ?? 0
      }, id)
      expect(journaled).toBeGreaterThanOrEqual(2)
      const { result, error, stats, events } = await stopRecorder(page)
      expect(error, JSON.stringify({ error, events })).toBeUndefined()
      expect(events.errors).toEqual([])
      expect(stats.journal).toBe(EXPECTED[name].journal)
      expect(result).toMatchObject({ sessionId: id, status: 'transcribing' })
      // WebKit hands over whole ~1 s fragments and drops what it encoded since the last at stop().
      expect(result.durationMs).toBeGreaterThan(name === 'webkit' ? 2_500 : 3_000)
      expect(result.durationMs).toBeLessThan(6_000)
      expect(await page.errors()).toEqual([])
    })

    it('a journal write failing mid-recording: the recording goes on in memory, parts still upload, and all of it is attached', async () => {
      const id = await recording()
      // The browser's IndexedDB starts refusing chunk writes after the third (as a failing disk would).
      await page.evaluate(() => {
        const w = window as any
        if (!w.realAdd) w.realAdd = IDBObjectStore.prototype.add
        let n = 0
        IDBObjectStore.prototype.add = function (this: IDBObjectStore, ...args: [unknown, IDBValidKey?]) {
          if (this.name === 'chunks' && ++n > 3) throw new DOMException('injected: the disk failed', 'UnknownError')
          return w.realAdd.apply(this, args)
        }
      })
      try {
        // Small parts (a local store allows them) so that parts fill while recording.
        await startRecorder(page, id, { partSizeBytes: 64 * 1024, audioBitsPerSecond: 128_000 })
        const seconds = name === 'webkit' ? 6 : 10
        await wait(seconds * 1000)
        const during = await page.evaluate(() => ({
          state: (window as any).r.state,
          journal: (window as any).r.stats.journal,
          partsBeforeStop: (window as any).r.stats.partsBeforeStop,
        }))
        expect(during.state).toBe('recording')
        expect(during.journal).toBe('memory')
        const { result, error, stats, events } = await stopRecorder(page)
        expect(error, JSON.stringify({ error, events })).toBeUndefined()
        expect(events.errors).toHaveLength(1)
        expect(events.errors[0]).toMatchObject({ code: 'journal_failed', recordingContinues: true })
        expect(events.errors[0].message).toMatch(/goes on in memory.*reload.*loses/)
        expect(stats.journal).toBe('memory')
        // WebKit's AAC is ~8 KB/s: two 64 KiB parts would take 16 s. The WebM engines fill one.
        if (name !== 'webkit') expect(stats.partsBeforeStop).toBeGreaterThanOrEqual(1)
        expect(result).toMatchObject({ sessionId: id, status: 'transcribing' })
        expect(result.durationMs).toBeGreaterThan((seconds - (name === 'webkit' ? 2 : 1.5)) * 1000)
        expect(result.durationMs).toBeLessThan((seconds + 2) * 1000)
      } finally {
        await page.evaluate(() => {
          IDBObjectStore.prototype.add = (window as any).realAdd
        })
      }
      expect(await page.errors()).toEqual([])
    })

    it('part 1 goes up while recording; after stop() the stored blob played from its own URL, and through the route, has its length at loadedmetadata and a seek to 80 % lands and plays on', async () => {
      // A deployment that stores uploads public, so that the page can read the blob's own URL as
      // any direct reader would (a download link, a job handed the URL).
      const privateHandlers = { ...handlers }
      Object.assign(
        handlers,
        createAudioHandlers(s.oidcOptions({ blobCallbackUrl: route.url, logLevel: 'warn', blobAccess: 'public' })),
      )
      try {
        const id = await recording()
        const mpuBefore = s.blob.multipart.length
        // Small parts (a local store allows them): part 1 fills while recording. WebKit's AAC is
        // ~8 KB/s, so it records longer to fill one.
        await startRecorder(page, id, { partSizeBytes: 64 * 1024, audioBitsPerSecond: 128_000 })
        await wait(name === 'webkit' ? 10_000 : 6_000)
        const stopAt = Date.now()
        const { result, error, stats, events } = await stopRecorder(page)
        expect(error, JSON.stringify({ error, events })).toBeUndefined()
        expect(result).toMatchObject({ sessionId: id, status: 'transcribing' })
        expect(stats.partsBeforeStop).toBeGreaterThanOrEqual(1)
        const upload = s.blob.multipart.slice(mpuBefore).find((m: { pathname: string }) => m.pathname.includes(id))
        expect(upload.parts[0]).toMatchObject({ partNumber: 1 })
        expect(upload.parts[0].startedAt).toBeLessThan(stopAt)
        const { audioUrl } = await s.convex.getSession(id)
        // The attached file is final (Duration and Cues; durations and a sidx) as the client's
        // finaliser reads it, though part 1 went up with the provisional header region. Firefox
        // alone would play this short provisional file with its length, once read whole.
        const finaliser = createFinaliser(result.contentType)
        finaliser.push(new Uint8Array(await (await fetch(audioUrl)).arrayBuffer()))
        expect(finaliser.finish().alreadyFinal).toBe(true)
        const seconds = result.durationMs / 1000
        // WebKit seeks in fragmented MP4 only with preload="auto" (docs/mp4-finalise.md).
        const preload = name === 'webkit' ? 'auto' : 'metadata'
        for (const src of [audioUrl, `/api/listening-sessions/${id}/audio`]) {
          const got: PageResult = await page.evaluate(inPage, [src, preload, seconds * 0.8] as [string, string, number])
          const where = JSON.stringify({ src, ...got })
          expect(got.loaded, where).toBe(true)
          expect(Math.abs(got.duration! - seconds), where).toBeLessThan(Math.max(0.1, seconds * 0.02))
          expect(got.seeked, where).toBe(true)
          expect(Math.abs(got.at - seconds * 0.8), where).toBeLessThan(0.5)
          expect(got.now, where).toBeGreaterThan(got.at + 0.3)
        }
      } finally {
        Object.assign(handlers, privateHandlers)
      }
      expect(await page.errors()).toEqual([])
    })
  })
}
