// A MediaRecorder WebM finalised by session-audio/client's `finaliseWebm` plays in Chromium with a
// finite duration and seeks, served over HTTP with Range as a store serves it; the raw recording
// does not (duration Infinity), so this test would fail if finalising did nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import send from 'send'
import { chromium, type Browser, type Page } from 'playwright-core'
import { finaliseWebm } from '../client/webm.mjs'

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium'
const fixtures = path.resolve(__dirname, '../__test__/fixtures/audio')
const RAW = 'chromium-20s-timeslice.webm'
const truth: number = JSON.parse(fs.readFileSync(path.join(fixtures, `${RAW}.json`), 'utf8')).decodedSeconds
let dir = ''
let server: http.Server
let base = ''
let browser: Browser
/** Every Range request the server answered: `file bytes=a-b`. */
const ranges: string[] = []

beforeAll(async () => {
  if (!fs.existsSync(CHROMIUM))
    throw new Error(`${CHROMIUM} not found: install Debian's chromium (apt-get install chromium)`)
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'session-audio-webm-'))
  const raw = fs.readFileSync(path.join(fixtures, RAW))
  const finalised = await finaliseWebm(new Blob([raw], { type: 'audio/webm' }))
  fs.writeFileSync(path.join(dir, 'raw.webm'), raw)
  fs.writeFileSync(path.join(dir, 'finalised.webm'), Buffer.from(await finalised.arrayBuffer()))
  fs.writeFileSync(path.join(dir, 'index.html'), '<!doctype html><title>webm</title>')
  server = http.createServer((req, res) => {
    if (req.headers.range) ranges.push(`${req.url} ${req.headers.range}`)
    send(req, new URL(req.url ?? '/', 'http://x').pathname, { root: dir, acceptRanges: true, etag: false }).pipe(res)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--autoplay-policy=no-user-gesture-required'],
  })
})

afterAll(async () => {
  await browser?.close()
  server?.close()
  if (dir) fs.rmSync(dir, { recursive: true, force: true })
})

/** `<audio preload=metadata>` on `file`: duration and seekable end at `loadedmetadata`. */
async function metadata(page: Page, file: string) {
  await page.goto(`${base}/index.html`)
  return page.evaluate(async (src) => {
    const a = document.createElement('audio')
    a.id = 'player'
    a.preload = 'metadata'
    document.body.append(a)
    const loaded = new Promise((r) => a.addEventListener('loadedmetadata', r, { once: true }))
    a.src = src
    await loaded
    return { duration: a.duration, seekEnd: a.seekable.length ? a.seekable.end(a.seekable.length - 1) : null }
  }, `${base}/${file}`)
}

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
})
