// The demo (examples/nextjs, as e2e/demo.e2e.ts runs it in Chromium) in Firefox ESR and WebKitGTK,
// headless: a 20 s recording reaches `transcribing` with the length it recorded, plays with a finite
// duration and seeks; a reload at 15 s is resumed by the next load with ≥ 13 s attached; no
// uncaught page error. ONLY_ENGINE=firefox (or webkit) runs one engine.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { startLocalStack } from '../stack/local.mjs'
import { startExampleApp } from '../stack/app.mjs'
import { launchEngine, type Engine, type EngineName, type EnginePage } from './lib/engines'

const ENGINES: EngineName[] = (['firefox', 'webkit'] as const).filter(
  (e) => !process.env.ONLY_ENGINE || e === process.env.ONLY_ENGINE,
)
/**
 * Where seeks are checked: in both engines. The demo's player plays from its Pages API route
 * (`playback`), whose answer keeps Content-Length; WebKitGTK seeks in the recorder's fragmented MP4
 * only with a length and `preload="auto"` (docs/mp4-finalise.md, "WebKit", has the matrix).
 */
const SEEKS: Record<string, number[]> = { firefox: [15, 5], webkit: [15, 5] }
const RESUMED_SEEKS: Record<string, number[]> = { firefox: [10], webkit: [10] }
/** What each engine records (the recorder's choice) and how its journal keeps chunks. */
const EXPECTED: Record<string, { type: RegExp; journal: string }> = {
  firefox: { type: /\(audio\/webm/, journal: 'blob' },
  webkit: { type: /\(audio\/mp4/, journal: 'arraybuffer' },
}

let stack: Awaited<ReturnType<typeof startLocalStack>>
let app: Awaited<ReturnType<typeof startExampleApp>>

beforeAll(async () => {
  stack = await startLocalStack({ dir: fs.mkdtempSync(path.join(os.tmpdir(), 'session-audio-e2e-engines-')) })
  app = await startExampleApp({ env: stack.env, port: 3600 + (process.pid % 300), inherit: !!process.env.E2E_ECHO })
})
afterAll(async () => {
  await app?.close()
  await stack?.close()
})

const text = (page: EnginePage, selector: string) =>
  page.evaluate((sel) => document.querySelector(sel)?.textContent ?? null, selector)
const click = (page: EnginePage, selector: string) =>
  page.evaluate((sel) => (document.querySelector(sel) as HTMLElement).click(), selector)
const recordedMs = (page: EnginePage) =>
  page.evaluate(() => Number(document.querySelector('#recorded')?.getAttribute('data-ms') ?? 0))
const wait = (ms: number) => new Promise((r) => setTimeout(r, ms))

async function signIn(page: EnginePage) {
  await page.goto(app.url)
  await page.waitFor(() => !!document.querySelector('#sign-in') || !!document.querySelector('#user'))
  if (await text(page, '#user')) return
  await click(page, '#sign-in')
  await page
    .waitFor(() => [...document.querySelectorAll('button')].some((b) => b.textContent?.includes('Sign in as Alice')))
    .catch(async (e) => {
      throw new Error(
        `${e.message} at ${await page.evaluate(() => location.href + ' ' + document.body?.innerText.slice(0, 300))}`,
      )
    })
  await page.evaluate(() =>
    [...document.querySelectorAll('button')].find((b) => b.textContent?.includes('Sign in as Alice'))!.click(),
  )
  await page.waitFor(() => !!document.querySelector('#user'), undefined, 30_000)
}

async function newSession(page: EnginePage) {
  await click(page, '#new-session')
  await page.waitFor(() => !!document.querySelector('#record'))
  return (await text(page, '#session-id')) ?? ''
}

/**
 * The player's duration at loadedmetadata, and whether a seek to each target plays on from there.
 * Every wait is bounded: a step that does not come is reported (`stuck`), not waited on forever.
 */
function playAndSeek(page: EnginePage, targets: number[]) {
  return page.evaluate(async (ts: number[]) => {
    const a = document.querySelector('#player') as HTMLAudioElement
    const trace: string[] = []
    const event = (name: string, ms = 10_000) =>
      new Promise<boolean>((r) => {
        const t = setTimeout(() => r(false), ms)
        a.addEventListener(name, () => (clearTimeout(t), r(true)), { once: true })
      })
    let playedFromStart = 0
    const result = (stuck?: string) => ({
      targets: ts,
      duration: a.duration,
      playedFromStart,
      seeks,
      stuck,
      trace,
      state: {
        readyState: a.readyState,
        networkState: a.networkState,
        error: a.error?.message ?? null,
        src: a.currentSrc,
      },
    })
    const seeks: { target: number; from: number; now: number }[] = []
    if (a.readyState < 1 && !(await event('loadedmetadata'))) return result('loadedmetadata')
    a.muted = true
    // From the start first: it plays.
    await a.play().catch((e) => trace.push(`play: ${e}`))
    const t0 = performance.now()
    while (a.currentTime < 0.3 && performance.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 50))
    a.pause()
    playedFromStart = a.currentTime
    for (const t of ts) {
      a.pause()
      const seeked = event('seeked')
      a.currentTime = t
      if (!(await seeked)) return result(`seeked ${t}`)
      const from = a.currentTime
      // The position is what is checked, not play()'s promise: after a seek in a buffered file,
      // WebKitGTK plays on from the target but may leave readyState at HAVE_CURRENT_DATA and never
      // fire `playing`, so the promise stays pending while the audio advances (measured).
      a.play().then(
        () => trace.push(`play at ${from}: ok`),
        (e) => trace.push(`play at ${from}: ${e}`),
      )
      const t1 = performance.now()
      while (a.currentTime < from + 0.3 && performance.now() - t1 < 10_000) await new Promise((r) => setTimeout(r, 50))
      a.pause()
      seeks.push({ target: t, from, now: a.currentTime })
    }
    return result()
  }, targets)
}

/** Every seek was made, landed at its target, and playback went on from there (not from the end). */
function expectSeeksPlayOn(played: Awaited<ReturnType<typeof playAndSeek>>) {
  expect(played.seeks.length, JSON.stringify(played)).toBe(played.targets.length)
  for (const s of played.seeks) {
    expect(s.from, JSON.stringify(played)).toBeCloseTo(s.target, 0)
    expect(s.now, JSON.stringify(played)).toBeGreaterThan(s.from + 0.2)
    expect(s.now, JSON.stringify(played)).toBeLessThan(s.from + 3)
  }
}

for (const name of ENGINES) {
  describe(`the demo in ${name}`, () => {
    let engine: Engine
    let page: EnginePage
    beforeAll(async () => {
      engine = await launchEngine(name)
      page = await engine.newPage()
      await signIn(page)
    })
    afterAll(async () => {
      await page?.close()
      await engine?.close()
    })

    it(`records 20 s: transcribing with the length recorded (±1.5 s), plays with a finite duration${SEEKS[name].length ? ' and seeks' : ''}`, async () => {
      await page.waitFor(() => document.querySelector('#resume')?.textContent === 'nothing to resume')
      const id = await newSession(page)
      await click(page, '#record')
      await page.waitFor(() => document.querySelector('#recorder-state')?.textContent === 'recording')
      expect(await text(page, '#journal-mode')).toBe(EXPECTED[name].journal)
      await page.waitFor(
        () => Number(document.querySelector('#recorded')?.getAttribute('data-ms')) >= 20_000,
        undefined,
        40_000,
      )
      const recorded = await recordedMs(page)
      await click(page, '#stop')
      await page.waitFor(() => document.querySelector('#status')?.textContent === 'transcribing', undefined, 60_000)
      const message = (await text(page, '#message')) ?? ''
      expect(message).toMatch(EXPECTED[name].type)
      const listed = await page.evaluate(async () => (await (await fetch('/api/listening-sessions')).json()).sessions)
      const session = listed.find((x: { _id: string }) => x._id === id)
      expect(session?.status).toBe('transcribing')
      expect(Math.abs(session.durationMs - recorded), JSON.stringify({ session, recorded })).toBeLessThanOrEqual(1_500)
      await page.waitFor(() => !!document.querySelector('#player'))
      const played = await playAndSeek(page, SEEKS[name])
      expect(played.stuck, JSON.stringify(played)).toBeFalsy()
      expect(Number.isFinite(played.duration), JSON.stringify(played)).toBe(true)
      expect(Math.abs(played.duration * 1000 - session.durationMs)).toBeLessThan(300)
      expect(played.playedFromStart, JSON.stringify(played)).toBeGreaterThan(0.2)
      expectSeeksPlayOn(played)
      // What the seek rests on: the player's answer carries the file's length (an App Router
      // route's would not, behind `next start`).
      const head = await page.evaluate(async () => {
        const r = await fetch((document.querySelector('#player') as HTMLAudioElement).currentSrc, { method: 'HEAD' })
        return { status: r.status, length: r.headers.get('content-length') }
      })
      expect(head).toEqual({ status: 200, length: String(session.audioSizeBytes) })
      expect(await page.errors()).toEqual([])
    })

    it('a reload at 15 s: the next load resumes the journal, and ≥ 13 s are attached', async () => {
      const id = await newSession(page)
      await click(page, '#record')
      await page.waitFor(
        () => Number(document.querySelector('#recorded')?.getAttribute('data-ms')) >= 15_000,
        undefined,
        40_000,
      )
      await page.reload()
      await page.waitFor(
        () => /^resumed /.test(document.querySelector('#resume')?.textContent ?? ''),
        undefined,
        60_000,
      )
      expect(await text(page, '#resume')).toBe(`resumed 1 recording: ${id} → transcribing`)
      const listed = await page.evaluate(async () => (await (await fetch('/api/listening-sessions')).json()).sessions)
      const session = listed.find((x: { _id: string }) => x._id === id)
      expect(session?.status).toBe('transcribing')
      expect(session?.durationMs).toBeGreaterThanOrEqual(13_000)
      expect(session?.durationMs).toBeLessThan(17_000)
      await page.waitFor(() => !!document.querySelector('#player'))
      const played = await playAndSeek(page, RESUMED_SEEKS[name])
      expect(played.stuck, JSON.stringify(played)).toBeFalsy()
      expect(Number.isFinite(played.duration), JSON.stringify(played)).toBe(true)
      expectSeeksPlayOn(played)
      expect(await page.errors()).toEqual([])
      await wait(0)
    })
  })
}
