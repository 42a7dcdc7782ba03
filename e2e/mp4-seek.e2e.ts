// A MediaRecorder fragmented MP4 finalised by session-audio/client's `finaliseMp4` opens in Chromium
// at once with a finite duration and seeks straight to the fragment it needs, served with Range as
// a store serves it. The raw recording has no index: Chromium reads every fragment before
// `loadedmetadata` (the whole file, however long), so this test fails if finalising did nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'
import { AUTOPLAY_ARG, BASE_ARGS, CHROMIUM, requireChromium } from '../stack/chromium.mjs'
import { finaliseMp4 } from '../client/mp4.mjs'

const fixtures = path.resolve(__dirname, '../__test__/fixtures/audio')
const RAW = 'chromium-20s-timeslice.m4a'
const truth: number = JSON.parse(fs.readFileSync(path.join(fixtures, `${RAW}.json`), 'utf8')).decodedSeconds
let server: http.Server
let base = ''
let browser: Browser
/** Requests: when, which file, from which byte. */
const requests: { t: number; file: string; from: number }[] = []
const files: Record<string, Buffer> = {}

/**
 * `/<file>` answers Range requests at about 80 KB/s (8 KiB every 100 ms): the 320 KB recording takes
 * 4 s to read whole, so a player that needs all of it is seen waiting.
 */
function slowLink(req: http.IncomingMessage, res: http.ServerResponse, file: string) {
  const body = files[file]
  if (!body) return void res.writeHead(404).end()
  const m = /bytes=(\d+)-(\d*)/.exec(req.headers.range ?? '')
  const start = m ? Number(m[1]) : 0
  const end = m && m[2] ? Number(m[2]) + 1 : body.length
  requests.push({ t: Date.now(), file, from: start })
  res.writeHead(m ? 206 : 200, {
    'content-type': 'audio/mp4',
    'accept-ranges': 'bytes',
    'content-length': String(end - start),
    ...(m ? { 'content-range': `bytes ${start}-${end - 1}/${body.length}` } : {}),
  })
  let at = start
  const tick = () => {
    if (res.destroyed) return
    if (at >= end) return void res.end()
    res.write(body.subarray(at, Math.min(at + 8192, end)))
    at += 8192
    setTimeout(tick, 100)
  }
  tick()
}

beforeAll(async () => {
  requireChromium()
  const raw = fs.readFileSync(path.join(fixtures, RAW))
  files['raw.m4a'] = raw
  files['finalised.m4a'] = Buffer.from(await (await finaliseMp4(new Blob([raw], { type: 'audio/mp4' }))).arrayBuffer())
  server = http.createServer((req, res) => {
    if (req.url === '/') return void res.end('<!doctype html><title>mp4</title>')
    slowLink(req, res, (req.url ?? '/').slice(1))
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', ...BASE_ARGS, AUTOPLAY_ARG],
  })
})

afterAll(async () => {
  await browser?.close()
  server?.close()
})

/** `<audio preload=metadata>` on `file`: ms to `loadedmetadata`, duration and seekable end then. */
async function metadata(page: Page, file: string) {
  await page.goto(`${base}/`)
  return page.evaluate(async (src) => {
    const a = document.createElement('audio')
    a.id = 'player'
    a.preload = 'metadata'
    document.body.append(a)
    const loaded = new Promise((r) => a.addEventListener('loadedmetadata', r, { once: true }))
    const t0 = performance.now()
    a.src = src
    await loaded
    return {
      ms: performance.now() - t0,
      duration: a.duration,
      seekEnd: a.seekable.length ? a.seekable.end(a.seekable.length - 1) : null,
    }
  }, `${base}/${file}`)
}

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
