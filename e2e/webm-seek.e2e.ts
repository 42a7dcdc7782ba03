// A MediaRecorder WebM finalised by session-audio/client's `finaliseWebm` plays in Chromium with a
// finite duration and seeks, served over HTTP with Range as a store serves it; the raw recording
// does not (duration Infinity), so this test would fail if finalising did nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import send from 'send'
import type { Browser, Page } from 'playwright-core'
import { audioMetadata, launchPlayer, recordedFixture, slowLink, type SlowRequest } from './lib/seek-harness'
import { finaliseWebm } from '../client/finalise/webm.mjs'

const { raw, truth } = recordedFixture('chromium-20s-timeslice.webm')
let dir = ''
let server: http.Server
let base = ''
let browser: Browser
/** Every Range request the server answered: `file bytes=a-b`. */
const ranges: string[] = []
/** Requests to the slow link: when, which file, from which byte. */
const slow: SlowRequest[] = []
const files: Record<string, Buffer> = {}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'session-audio-webm-'))
  const finalised = await finaliseWebm(new Blob([raw], { type: 'audio/webm' }))
  files['raw.webm'] = raw
  files['finalised.webm'] = Buffer.from(await finalised.arrayBuffer())
  for (const [name, bytes] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), bytes)
  fs.writeFileSync(path.join(dir, 'index.html'), '<!doctype html><title>webm</title>')
  server = http.createServer((req, res) => {
    // `/slow/<file>`: Range answered at about 80 KB/s, so Chromium has not buffered the file when it
    // seeks and must fetch the target's bytes: from where shows whether it found them in the Cues or
    // reads on from where it was.
    if (req.url?.startsWith('/slow/')) {
      const file = req.url.slice('/slow/'.length)
      return slowLink(req, res, file, files[file], 'audio/webm', slow)
    }
    if (req.headers.range) ranges.push(`${req.url} ${req.headers.range}`)
    send(req, new URL(req.url ?? '/', 'http://x').pathname, { root: dir, acceptRanges: true, etag: false }).pipe(res)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`
  browser = await launchPlayer()
})

afterAll(async () => {
  await browser?.close()
  server?.close()
  if (dir) fs.rmSync(dir, { recursive: true, force: true })
})

/** `<audio preload=metadata>` on `file`: duration and seekable end at `loadedmetadata`. */
const metadata = (page: Page, file: string) => audioMetadata(page, `${base}/index.html`, `${base}/${file}`)

describe('finaliseWebm in Chromium', () => {
  it('the raw MediaRecorder file: duration Infinity at loadedmetadata (what finalising fixes)', async () => {
    const page = await browser.newPage()
    const meta = await metadata(page, 'raw.webm')
    expect(meta.duration).toBe(Infinity)
    await page.close()
  })

  it('the finalised file: finite duration within 1 % of the decoded length, seekable, a seek to 15 s plays on', async () => {
    const page = await browser.newPage()
    const meta = await metadata(page, 'finalised.webm')
    expect(Number.isFinite(meta.duration)).toBe(true)
    expect(Math.abs(meta.duration - truth) / truth).toBeLessThan(0.01)
    expect(Number.isFinite(meta.seekEnd)).toBe(true)
    expect(meta.seekEnd).toBeGreaterThanOrEqual(meta.duration - 0.1)
    const played = await page.evaluate(async () => {
      const a = document.querySelector('#player') as HTMLAudioElement
      a.currentTime = 15
      await new Promise((r) => a.addEventListener('seeked', r, { once: true }))
      const from = a.currentTime
      await a.play()
      const t0 = performance.now()
      while (a.currentTime <= 15.6 && performance.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 50))
      a.pause()
      return { from, now: a.currentTime, error: a.error?.message ?? null }
    })
    expect(played.error).toBeNull()
    expect(played.from).toBeCloseTo(15, 0)
    expect(played.now).toBeGreaterThan(15.5)
    expect(ranges.some((r) => r.startsWith('/finalised.webm '))).toBe(true)
    await page.close()
  })

  it('over a slow link the seek reads the Cues and jumps to the cluster, although the clusters keep unknown sizes', async () => {
    const bytes = files['finalised.webm']
    // The cluster a seek to 15 s lands in: the last one starting at or before 15 s (CueTime in ms).
    const cluster = Buffer.from([0x1f, 0x43, 0xb6, 0x75])
    const starts: number[] = []
    for (let at = bytes.indexOf(cluster); at >= 0; at = bytes.indexOf(cluster, at + 4)) starts.push(at)
    const target = starts[Math.floor((starts.length * 14) / 20)]
    const cues = bytes.lastIndexOf(Buffer.from([0x1c, 0x53, 0xbb, 0x6b]))
    const page = await browser.newPage()
    const meta = await metadata(page, 'slow/finalised.webm')
    expect(Number.isFinite(meta.duration)).toBe(true)
    const seek = await page.evaluate(async () => {
      const a = document.querySelector('#player') as HTMLAudioElement
      const at = Date.now()
      a.currentTime = 15
      const seeked = await Promise.race([
        new Promise((r) => a.addEventListener('seeked', () => r(true), { once: true })),
        new Promise((r) => setTimeout(() => r(false), 15_000)),
      ])
      return { at, seeked, ms: Date.now() - at }
    })
    expect(seek.seeked).toBe(true)
    const after = slow.filter((r) => r.file === 'finalised.webm' && r.t >= seek.at).map((r) => r.from)
    // First the Cues at the end, then the cluster: no linear read on from the start. (Chromium asks
    // for whole 32 KiB blocks of its media cache, so a request starts up to a block before.)
    const near = (offset: number) => after.some((from) => from <= offset && from > offset - 65536)
    expect(near(cues), JSON.stringify({ cues, target, after })).toBe(true)
    expect(near(target), JSON.stringify({ cues, target, after })).toBe(true)
    await page.close()
  })
})
