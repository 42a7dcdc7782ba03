// The fixture recorder behind scripts/record-webm-fixture.mjs and scripts/record-mp4-fixture.mjs:
// Debian's Chromium with its fake microphone (a beep every second), `MediaRecorder` with the given
// mime type started with a timeslice, every `dataavailable` chunk kept in order and written as one
// file, plus `<file>.json` beside it: the chunk sizes (tests replay the recorder's own chunking) and
// the length Chromium's decoder (`decodeAudioData`) finds, the tests' ground truth.
import fs from 'node:fs'
import http from 'node:http'
import { chromium } from 'playwright-core'
import { AUTOPLAY_ARG, BASE_ARGS, CHROMIUM, FAKE_MEDIA_ARGS } from '../../stack/chromium.mjs'

/**
 * Records `seconds` of the fake microphone with `MediaRecorder(stream, { mimeType })` and writes
 * `out` and `out.json`. `argv`: `<out> <seconds> [audioBitsPerSecond] [timesliceMs]`; `usage` is
 * the error thrown without `<out>`.
 */
export async function recordFixture({ mimeType, usage, argv = process.argv.slice(2) }) {
  const [out, seconds = '20', bits = '', slice = '1000'] = argv
  if (!out) throw new Error(usage)
  // getUserMedia needs a secure context: localhost is one.
  const server = http.createServer((_, res) => res.end('<!doctype html><title>record</title>'))
  await new Promise((r) => server.listen(0, '127.0.0.1', r))
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', ...BASE_ARGS, ...FAKE_MEDIA_ARGS, AUTOPLAY_ARG],
  })
  try {
    const page = await browser.newPage()
    await page.goto(`http://localhost:${server.address().port}/`)
    const { b64: chunks, seconds: decodedSeconds } = await page.evaluate(
      async ([ms, bps, timeslice, mimeType]) => {
        const stream = await navigator.mediaDevices.getUserMedia({ audio: true })
        const options = { mimeType }
        if (bps) options.audioBitsPerSecond = bps
        const rec = new MediaRecorder(stream, options)
        const parts = []
        rec.ondataavailable = (e) => e.data.size && parts.push(e.data)
        const stopped = new Promise((r) => (rec.onstop = r))
        rec.start(timeslice)
        await new Promise((r) => setTimeout(r, ms))
        rec.stop()
        await stopped
        stream.getTracks().forEach((t) => t.stop())
        // Chromium's own decoder says how long the recording is: the tests' ground truth.
        const decoded = await new AudioContext().decodeAudioData(await new Blob(parts).arrayBuffer())
        const b64 = []
        for (const p of parts) {
          const bytes = new Uint8Array(await p.arrayBuffer())
          let s = ''
          for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000))
          b64.push(btoa(s))
        }
        return { b64, seconds: decoded.duration }
      },
      [Number(seconds) * 1000, Number(bits) || 0, Number(slice), mimeType],
    )
    const buffers = chunks.map((c) => Buffer.from(c, 'base64'))
    fs.writeFileSync(out, Buffer.concat(buffers))
    const about = { chromium: browser.version(), decodedSeconds, chunks: buffers.map((b) => b.length) }
    fs.writeFileSync(`${out}.json`, JSON.stringify(about) + '\n')
    console.log(`${out}: ${buffers.reduce((n, b) => n + b.length, 0)} bytes in ${buffers.length} chunks`)
    console.log(`chromium ${browser.version()}`)
  } finally {
    await browser.close()
    server.close()
  }
}
