// A MediaRecorder fragmented MP4 finalised by session-audio/client's `finaliseMp4` opens in Chromium
// at once with a finite duration and seeks straight to the fragment it needs, served with Range as
// a store serves it. The raw recording has no index: Chromium reads every fragment before
// `loadedmetadata` (the whole file, however long), so this test fails if finalising did nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import http from 'node:http'
import type { Browser, Page } from 'playwright-core'
import { audioMetadata, launchPlayer, recordedFixture, slowLink, type SlowRequest } from './lib/seek-harness'
import { finaliseMp4 } from '../client/finalise/mp4.mjs'

const { raw, truth } = recordedFixture('chromium-20s-timeslice.m4a')
let server: http.Server
let base = ''
let browser: Browser
/** Requests: when, which file, from which byte. */
const requests: SlowRequest[] = []
const files: Record<string, Buffer> = {}

beforeAll(async () => {
  files['raw.m4a'] = raw
  files['finalised.m4a'] = Buffer.from(await (await finaliseMp4(new Blob([raw], { type: 'audio/mp4' }))).arrayBuffer())
  server = http.createServer((req, res) => {
    if (req.url === '/') return void res.end('<!doctype html><title>mp4</title>')
    // `/<file>` at about 80 KB/s: the 320 KB recording takes 4 s to read whole, so a player that
    // needs all of it is seen waiting.
    const file = (req.url ?? '/').slice(1)
    slowLink(req, res, file, files[file], 'audio/mp4', requests)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`
  browser = await launchPlayer()
})

afterAll(async () => {
  await browser?.close()
  server?.close()
})

/** Seek to `t`, play, and report where it played from and to. */
const seekAndPlay = (page: Page, t: number) =>
  page.evaluate(async (to) => {
    const a = document.querySelector('#player') as HTMLAudioElement
    const at = Date.now()
    a.currentTime = to
    await new Promise((r) => a.addEventListener('seeked', r, { once: true }))
    const from = a.currentTime
    a.muted = true
    await a.play()
    const t0 = performance.now()
    while (a.currentTime <= to + 0.6 && performance.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 50))
    a.pause()
    return { at, from, now: a.currentTime, error: a.error?.message ?? null }
  }, t)

/** `<audio preload=metadata>` on `file`: ms to `loadedmetadata`, duration and seekable end then. */
const metadata = (page: Page, file: string) => audioMetadata(page, `${base}/`, `${base}/${file}`)

describe('finaliseMp4 in Chromium', () => {
  it('the raw MediaRecorder MP4: loadedmetadata only once the whole file was read (what finalising fixes)', async () => {
    const page = await browser.newPage()
    const meta = await metadata(page, 'raw.m4a')
    // 320 KB at 80 KB/s: about 4 s to read it all.
    expect(meta.ms).toBeGreaterThan(3000)
    await page.close()
  })

  it('the finalised file: loadedmetadata at once with a duration within 1 % of the decoded length; a seek to 15 s jumps to its fragment and plays on', async () => {
    const bytes = files['finalised.m4a']
    // The moof a seek to 15 s lands in: fragments are about a second each.
    const moofs: number[] = []
    for (let at = bytes.indexOf('moof'); at >= 0; at = bytes.indexOf('moof', at + 4)) moofs.push(at - 4)
    const target = moofs[14]
    const page = await browser.newPage()
    const meta = await metadata(page, 'finalised.m4a')
    expect(meta.ms).toBeLessThan(1500)
    expect(Number.isFinite(meta.duration)).toBe(true)
    expect(Math.abs(meta.duration - truth) / truth).toBeLessThan(0.01)
    expect(meta.seekEnd).toBeGreaterThanOrEqual(meta.duration - 0.1)
    const played = await seekAndPlay(page, 15)
    expect(played.error).toBeNull()
    expect(played.from).toBeCloseTo(15, 0)
    expect(played.now).toBeGreaterThan(15.5)
    // The seek asked for the target fragment's bytes (Chromium asks for whole 32 KiB blocks), not the
    // rest of the file from where it was.
    const after = requests.filter((r) => r.file === 'finalised.m4a' && r.t >= played.at).map((r) => r.from)
    expect(
      after.some((from) => from <= target && from > target - 65536),
      JSON.stringify({ target, after }),
    ).toBe(true)
    await page.close()
  })
})
