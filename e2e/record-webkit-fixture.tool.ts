// Records __test__/fixtures/audio/webkit-20s.m4a: WebKitGTK's MediaRecorder (fragmented MP4, AAC)
// from its mock microphone, `start(1000)`, every `dataavailable` chunk kept in order (the last one
// arrives after stop(): the file is written when the recorder's `stop` event fires), plus
// `<file>.json`: the chunk sizes and the engine's version. A tool, not a test (`npm test` never
// runs it: e2e/vitest.config.mts includes *.e2e.ts only); run it when the fixture is to be remade:
//   npm run record:webkit-fixture   (RECORD_WEBKIT_FIXTURE=20.3 by default: the seconds recorded)
import { it } from 'vitest'
import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import { launchEngine } from './lib/engines'

const seconds = Number(process.env.RECORD_WEBKIT_FIXTURE || 20.3)
const out = path.resolve(__dirname, '../__test__/fixtures/audio/webkit-20s.m4a')

it('records the WebKit MP4 fixture', { timeout: 120_000 }, async () => {
  const server = http.createServer((_, res) =>
    res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html>'),
  )
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const engine = await launchEngine('webkit')
  try {
    const page = await engine.newPage()
    await page.goto(`http://127.0.0.1:${(server.address() as { port: number }).port}/`)
    const got = await page.evaluate(async (ms: number) => {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true })
      const rec = new MediaRecorder(stream, { mimeType: 'audio/mp4' })
      const chunks: Blob[] = []
      rec.ondataavailable = (e) => chunks.push(e.data)
      const stopped = new Promise((r) => rec.addEventListener('stop', r))
      rec.start(1000)
      await new Promise((r) => setTimeout(r, ms))
      rec.stop()
      await stopped
      stream.getTracks().forEach((t) => t.stop())
      const bytes = new Uint8Array(await new Blob(chunks).arrayBuffer())
      let binary = ''
      for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000))
      return { type: rec.mimeType, sizes: chunks.map((c) => c.size), base64: btoa(binary) }
    }, seconds * 1000)
    fs.writeFileSync(out, Buffer.from(got.base64, 'base64'))
    fs.writeFileSync(
      `${out}.json`,
      JSON.stringify({ webkit: engine.version, mimeType: got.type, recordedSeconds: seconds, chunks: got.sizes }) +
        '\n',
    )
  } finally {
    await engine.close()
    server.close()
  }
})
