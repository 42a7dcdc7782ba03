// Seeking in a finalised WebKit recording, in WebKitGTK, through the audio route (docs/mp4-finalise.md,
// "WebKit"). `__test__/fixtures/audio/webkit-20s.m4a` is finalised as the recorder does it
// (repairRepeatedMoof, then finaliseMp4) and served three ways from one origin: by the audio route as
// `stack/route-server.mjs` relays it (Content-Length kept), by the route with Next 16.4's framing
// (`nextFraming`: Content-Length dropped, chunked), and by `send` (a plain static server). Each case
// plays from the start for 0.3 s, pauses, seeks to 15 s and plays: what the demo's player does.
//
// A probe, not a test: `npm run probe:webkit-seek`. Its cases did not hold run after run (one run,
// the Content-Length case jumped to the end on every try while the case without it played on from
// 15 s), so `npm test` does not run it; WebKit seeking stays open (README, browser matrix).
//
// What it showed on the runs it was written from (GStreamer 1.22, WebKitGTK 2.50):
// - `preload=auto` and a Content-Length: WebKit buffers the file on disk, qtdemux reads it in pull
//   mode and seeks in the fragments: the seek plays on from 15 s.
// - `preload=metadata`: WebKit streams into qtdemux (push mode), which ignores every seek in a
//   fragmented MP4 ("ignoring seek in push mode in current state"): the seek lands back where
//   playback was, from the route and from `send` alike. No header or file change reaches it.
// - no Content-Length (what Next 16.4 sends for any route handler's Response): WebKit's source
//   reports size 0 and "not seekable" at the response, and the seek lands back as well.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import fs from 'node:fs'
import path from 'node:path'
import send from 'send'
import { startRouteServer } from '../stack/route-server.mjs'
import { createAudioHandlers } from '../index.js'
import { startStack, type Stack } from '../__test__/helpers'
import { launchEngine, type Engine, type EnginePage } from './lib/engines'
import { finaliseMp4, repairRepeatedMoof } from '../client/finalise/mp4.mjs'

const FIXTURE = path.resolve(__dirname, '../__test__/fixtures/audio/webkit-20s.m4a')
const PAGE = '<!doctype html><meta charset=utf-8><title>seek</title>'

let s: Stack
let route: Awaited<ReturnType<typeof startRouteServer>>
let nextLike: Awaited<ReturnType<typeof startRouteServer>>
let engine: Engine
let page: EnginePage
let sessionId = ''
const handlers: Record<string, unknown> = {}

beforeAll(async () => {
  s = await startStack()
  const raw = repairRepeatedMoof(new Uint8Array(fs.readFileSync(FIXTURE)))
  const finalised = Buffer.from(await (await finaliseMp4(new Blob([raw], { type: 'audio/mp4' }))).arrayBuffer())
  fs.writeFileSync(path.join(s.root, 'finalised.m4a'), finalised)
  sessionId = await s.session('user_alice', '/audio/finalised.m4a')
  const fallback = (req: any, res: any) => {
    const url = new URL(req.url, 'http://x')
    if (url.pathname === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
      return res.end(PAGE)
    }
    if (url.pathname !== '/finalised.m4a') return void res.writeHead(404).end()
    send(req, url.pathname, { root: s.root }).pipe(res)
  }
  route = await startRouteServer({ handlers: handlers as never, fallback })
  nextLike = await startRouteServer({ handlers: handlers as never, fallback, nextFraming: true })
  Object.assign(handlers, createAudioHandlers(s.options({ logLevel: 'warn' })))
  engine = await launchEngine('webkit')
  const token = await s.clerk.sessionToken({ sub: 'user_alice', claims: { exp: Math.floor(Date.now() / 1000) + 3600 } })
  // Cookies are per host, not port: both route servers on 127.0.0.1 get it.
  await engine.setCookie(route.url, '__session', token)
  page = await engine.newPage()
  await page.goto(`${route.url}/`)
})

afterAll(async () => {
  await page?.close()
  await engine?.close()
  await route?.close()
  await nextLike?.close()
  await s?.close()
})

type Seek = { seeked: boolean; from: number; now: number; duration: number; trace: string[] }

/**
 * A new `<audio>` on `src`: once it can play (canplaythrough for `auto`), play 0.3 s from the start,
 * pause, seek to `to`, play 1 s. Every wait is bounded.
 */
function playThenSeek(src: string, preload: 'auto' | 'metadata', to = 15): Promise<Seek> {
  return page.evaluate(
    async ([src, preload, to]: [string, string, number]) => {
      const a = document.createElement('audio')
      a.preload = preload
      a.muted = true
      document.body.append(a)
      const trace: string[] = []
      const t0 = performance.now()
      for (const e of ['loadedmetadata', 'canplaythrough', 'seeking', 'seeked', 'playing', 'waiting', 'error'])
        a.addEventListener(e, () =>
          trace.push(`${Math.round(performance.now() - t0)} ${e} ${a.currentTime.toFixed(2)}`),
        )
      const event = (name: string, ms = 10_000) =>
        new Promise<boolean>((r) => {
          const t = setTimeout(() => r(false), ms)
          a.addEventListener(name, () => (clearTimeout(t), r(true)), { once: true })
        })
      const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
      const until = async (cond: () => boolean, ms: number) => {
        const t = performance.now()
        while (!cond() && performance.now() - t < ms) await sleep(50)
      }
      const ready = event(preload === 'auto' ? 'canplaythrough' : 'loadedmetadata')
      a.src = src
      await ready
      await Promise.race([a.play().catch((e) => trace.push(`play: ${e}`)), sleep(5000)])
      await until(() => a.currentTime >= 0.3, 5000)
      a.pause()
      const seeked = event('seeked')
      a.currentTime = to
      const ok = await seeked
      const from = a.currentTime
      await Promise.race([a.play().catch((e) => trace.push(`play: ${e}`)), sleep(5000)])
      await until(() => a.currentTime >= from + 1, 5000)
      a.pause()
      const out = { seeked: ok, from, now: a.currentTime, duration: a.duration, trace }
      a.removeAttribute('src')
      a.load()
      a.remove()
      return out
    },
    [src, preload, to] as [string, string, number],
  )
}

const audio = (base: string) => `${base}/api/listening-sessions/${sessionId}/audio`
/** Seeked, reads ≥ 15 s, and then played about the second it was given (not jumped to the end). */
const playsOnFrom15 = (r: Seek) => r.seeked && r.from >= 14.9 && r.now >= r.from + 0.5 && r.now <= r.from + 2.5

describe('seeking in the finalised WebKit recording, in WebKitGTK', () => {
  // One run in four (measured), WebKitGTK reports the seek at 15 s and then the end of the file
  // (20.0) instead of playing on: a retry, not a looser check.
  it('through the audio route (Content-Length relayed), preload=auto: plays on from ≥ 15 s', { retry: 2 }, async () => {
    const r = await playThenSeek(audio(route.url), 'auto')
    expect(r.duration, JSON.stringify(r)).toBeCloseTo(20.25, 1)
    expect(r.seeked, JSON.stringify(r)).toBe(true)
    expect(r.from, JSON.stringify(r)).toBeGreaterThanOrEqual(14.9)
    expect(playsOnFrom15(r), JSON.stringify(r)).toBe(true)
  })

  it('preload=metadata: the seek does not play on from 15 s, from the route and from a static server alike (qtdemux in push mode)', async () => {
    const viaRoute = await playThenSeek(audio(route.url), 'metadata')
    const viaSend = await playThenSeek(`${route.url}/finalised.m4a`, 'metadata')
    expect(Number.isFinite(viaRoute.duration), JSON.stringify(viaRoute)).toBe(true)
    expect(playsOnFrom15(viaRoute), JSON.stringify(viaRoute)).toBe(false)
    expect(playsOnFrom15(viaSend), JSON.stringify(viaSend)).toBe(false)
  })

  it('without Content-Length (Next 16.4 drops it from every route handler Response): the seek does not play on from 15 s', async () => {
    const r = await playThenSeek(audio(nextLike.url), 'auto')
    expect(Number.isFinite(r.duration), JSON.stringify(r)).toBe(true)
    expect(playsOnFrom15(r), JSON.stringify(r)).toBe(false)
  })
})
