// What the finalisers' seek tests (e2e/webm-seek.e2e.ts, e2e/mp4-seek.e2e.ts) share: the recorded
// fixture and its decoded length, Chromium for playback, a slow Range link, and the `<audio>`
// measurement at `loadedmetadata`.
import fs from 'node:fs'
import type http from 'node:http'
import path from 'node:path'
import { chromium, type Page } from 'playwright-core'
import { AUTOPLAY_ARG, BASE_ARGS, CHROMIUM, requireChromium } from '../../stack/chromium.mjs'

const fixtures = path.resolve(__dirname, '../../__test__/fixtures/audio')

/** A MediaRecorder fixture's bytes and the length Chromium's decoder found (`<name>.json`). */
export function recordedFixture(name: string): { raw: Buffer; truth: number } {
  const truth: number = JSON.parse(fs.readFileSync(path.join(fixtures, `${name}.json`), 'utf8')).decodedSeconds
  return { raw: fs.readFileSync(path.join(fixtures, name)), truth }
}

/** Headless Chromium that may play without a gesture; throws the "install chromium" error first. */
export function launchPlayer() {
  requireChromium()
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', ...BASE_ARGS, AUTOPLAY_ARG],
  })
}

/** One request to the slow link: when, which file, from which byte. */
export type SlowRequest = { t: number; file: string; from: number }

/**
 * Answers `body` (Range honoured) at about 80 KB/s (8 KiB every 100 ms), logging the request in
 * `log`, so Chromium has not buffered the file when it seeks and must fetch the bytes it needs.
 */
export function slowLink(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  file: string,
  body: Buffer | undefined,
  contentType: string,
  log: SlowRequest[],
) {
  if (!body) return void res.writeHead(404).end()
  const m = /bytes=(\d+)-(\d*)/.exec(req.headers.range ?? '')
  const start = m ? Number(m[1]) : 0
  const end = m && m[2] ? Number(m[2]) + 1 : body.length
  log.push({ t: Date.now(), file, from: start })
  res.writeHead(m ? 206 : 200, {
    'content-type': contentType,
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

/**
 * On `pageUrl`, an `<audio id=player preload=metadata>` on `src`: ms to `loadedmetadata`, duration
 * and seekable end then.
 */
export async function audioMetadata(page: Page, pageUrl: string, src: string) {
  await page.goto(pageUrl)
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
  }, src)
}
