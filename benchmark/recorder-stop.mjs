// `npm run bench:recorder`: how long a user waits after Stop until the session is `transcribing`,
// for a long recording on a slow uplink, with the recorder of `session-audio/client` (parts
// uploaded while recording, only what is left sent after Stop) against the simple path (the whole
// recording handed to `uploadSessionAudio` after Stop). One run, written into BENCHMARKS.md as its
// own section (between markers that `npm run bench` keeps).
//   node benchmark/recorder-stop.mjs [--quick] [--rounds N] [--minutes M] [--speed S]
//                                    [--up-mbps U] [--latency-ms L] [--part-mib P] [--out FILE]
// In Debian's Chromium (lib/browser-stack.mjs): the real route with the addon, the loopback
// services, the link throttled with CDP Network.emulateNetworkConditions. The recording is the
// real Chromium fixture repeated to M minutes (lib/long-webm.mjs), replayed S× faster than real
// time by a stand-in MediaRecorder (lib/simulated-recorder.js). --quick: 2 min at 24× with
// 512 KiB parts and one round, for the test that keeps this runnable (timings not asserted).
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { execSync } from 'node:child_process'
import { MiB, benchDir, benchFlags, log, repo } from './lib/common.mjs'
import { longWebm } from './lib/long-webm.mjs'
import { startBrowserStack } from './lib/browser-stack.mjs'
import { CHROMIUM } from '../stack/chromium.mjs'
import { median, fmt } from './lib/stats.mjs'
import { RECORDER_BEGIN, RECORDER_END, replaceSection } from './lib/sections.mjs'

const { argv, flags } = benchFlags({
  minutes: { type: 'string' },
  speed: { type: 'string' },
  'up-mbps': { type: 'string' },
  'latency-ms': { type: 'string' },
  'part-mib': { type: 'string' },
})
const quick = flags.quick
const cfg = {
  rounds: Number(flags.rounds ?? (quick ? 1 : 3)),
  minutes: Number(flags.minutes ?? (quick ? 2 : 30)),
  // 20×: 30 min in 90 s of wall time. Faster, the recording alone fills much of the link and the
  // last full part is still in flight at Stop, which real time (126 kbit/s on 10 Mbit/s) never sees.
  speed: Number(flags.speed ?? (quick ? 24 : 20)),
  // The recorder's default in a real run (what Blob's SDK uses); small in quick mode so 2 min of
  // audio still makes several parts.
  partBytes: flags['part-mib'] ? Number(flags['part-mib']) * MiB : quick ? 512 * 1024 : 8 * MiB,
  upMbps: Number(flags['up-mbps'] ?? 10),
  downMbps: 50,
  latencyMs: Number(flags['latency-ms'] ?? 40),
}
const out = path.resolve(flags.out)

const recording = longWebm(cfg.minutes)
const html = `<!doctype html><meta charset=utf-8><title>recorder benchmark</title>
<script src=/bench/simulated-recorder.js></script>
<script type=module>window.client = await import('/client.mjs'); window.ready = true</script>`
const stack = await startBrowserStack({
  page: html,
  files: {
    '/bench/simulated-recorder.js': {
      type: 'text/javascript',
      body: fs.readFileSync(path.join(benchDir, 'lib/simulated-recorder.js')),
    },
    '/bench/recording.webm': { type: 'audio/webm', body: Buffer.from(recording.bytes) },
  },
})

/** What one variant does in the page, from start() to the route's answer; timed from stop(). */
async function inPage(page, variant, sessionId) {
  return page.evaluate(
    async ([variant, id, opts]) => {
      const w = window
      const stream = new AudioContext().createMediaStreamDestination().stream
      let stopAt = 0
      let t0 = 0
      if (variant === 'recorder') {
        const r = w.client.createSessionRecorder(id, {
          stream,
          blobApiUrl: opts.apiUrl,
          partSizeBytes: opts.partBytes,
        })
        await r.start()
        await w.simulatedDone
        stopAt = Date.now()
        t0 = w.realNow()
        const result = await r.stop()
        return { ms: w.realNow() - t0, stopAt, result, stats: r.stats }
      }
      // The README's simple path: chunks kept in memory, the whole recording uploaded after Stop.
      // uploadSessionAudio finds Blob's API as @vercel/blob does in a browser, from the
      // VERCEL_BLOB_API_URL a bundler inlines (here: put where it looks).
      w.process = { env: { VERCEL_BLOB_API_URL: opts.apiUrl } }
      const media = new MediaRecorder(stream, { mimeType: 'audio/webm;codecs=opus' })
      const chunks = []
      media.ondataavailable = (e) => chunks.push(e.data)
      media.start(1000)
      await w.simulatedDone
      stopAt = Date.now()
      t0 = w.realNow()
      const stopped = new Promise((r) => (media.onstop = r))
      media.stop()
      await stopped
      const blob = new Blob(chunks, { type: media.mimeType })
      const result = await w.client.uploadSessionAudio(id, blob, { durationMs: opts.durationMs })
      return { ms: w.realNow() - t0, stopAt, result, stats: null }
    },
    [variant, sessionId, { apiUrl: stack.blob.apiUrl, partBytes: cfg.partBytes, durationMs: recording.durationMs }],
  )
}

/**
 * Bytes that went to Blob after `stopAt`, from the store's own log: a part in flight at Stop counts
 * with the share of its transfer time after Stop (the throttled link sends at a constant rate).
 */
function bytesAfter(sessionId, stopAt, storedSize) {
  const mpu = stack.blob.multipart.find((m) => m.pathname.includes(`listening-sessions/${sessionId}/`))
  if (!mpu) return { bytes: storedSize, partsBefore: 0 } // one PUT, sent after Stop
  let bytes = 0
  let partsBefore = 0
  for (const p of mpu.parts) {
    if (p.receivedAt <= stopAt) partsBefore++
    else if (p.startedAt >= stopAt) bytes += p.size
    else bytes += (p.size * (p.receivedAt - stopAt)) / Math.max(1, p.receivedAt - p.startedAt)
  }
  return { bytes, partsBefore }
}

async function run(variant) {
  const page = await stack.newPage()
  try {
    // The recording reaches the page before the link is throttled: it stands for the microphone.
    await page.evaluate(async (speed) => {
      const res = await fetch('/bench/recording.webm')
      window.simulatedSource = { blob: await res.blob(), ends: null, speed }
    }, cfg.speed)
    await page.evaluate((ends) => (window.simulatedSource.ends = ends), recording.chunkEnds)
    const cdp = await stack.context.newCDPSession(page)
    await cdp.send('Network.enable')
    await cdp.send('Network.emulateNetworkConditions', {
      offline: false,
      latency: cfg.latencyMs,
      uploadThroughput: (cfg.upMbps * 1e6) / 8,
      downloadThroughput: (cfg.downMbps * 1e6) / 8,
    })
    const id = await stack.recordingSession()
    const r = await inPage(page, variant, id)
    const doc = await stack.getSession(id)
    const sent = bytesAfter(id, r.stopAt, r.result.sizeBytes)
    const ok =
      r.result.status === 'transcribing' &&
      doc?.status === 'transcribing' &&
      Math.abs(r.result.durationMs - recording.durationMs) <= recording.durationMs * 0.01
    return {
      ok,
      seconds: r.ms / 1000,
      mibAfterStop: sent.bytes / MiB,
      partsBeforeStop: sent.partsBefore,
      storedMiB: r.result.sizeBytes / MiB,
      durationMs: r.result.durationMs,
      maxHeldMiB: r.stats ? r.stats.maxHeldBytes / MiB : null,
    }
  } catch (err) {
    return { ok: false, error: String(err?.stack ?? err) }
  } finally {
    await page.close().catch(() => {})
  }
}

const VARIANTS = ['recorder', 'at-stop']
const LABEL = {
  recorder: '`createSessionRecorder` (parts uploaded while recording)',
  'at-stop': '`uploadSessionAudio` of the whole recording after Stop',
}
const loadBefore = os.loadavg()
log(
  `recorder-stop: ${cfg.minutes} min at ${cfg.speed}×, ${cfg.upMbps} Mbit/s up, ${cfg.latencyMs} ms, ${cfg.rounds} round(s)`,
)
const results = { recorder: [], 'at-stop': [] }
for (let round = 0; round < cfg.rounds; round++) {
  // Alternate which goes first, so neither always runs on the warmer machine.
  for (const v of round % 2 ? [...VARIANTS].reverse() : VARIANTS) {
    const r = await run(v)
    log(`round ${round + 1} ${v}: ${JSON.stringify(r)}`)
    results[v].push(r)
  }
}
const loadAfter = os.loadavg()
await stack.close()

const allOk = VARIANTS.every((v) => results[v].every((r) => r.ok))
const med = (v, k) => median(results[v].map((r) => r[k]).filter((x) => typeof x === 'number'))
const sh = (c) => {
  try {
    return execSync(c, { cwd: repo, encoding: 'utf8' }).trim()
  } catch {
    return '?'
  }
}
const chromium = sh(`${CHROMIUM} --version 2>/dev/null`)
const mib = recording.bytes.length / MiB
const kbps = (recording.bytes.length * 8) / recording.durationMs
const ideal = (recording.bytes.length * 8) / (cfg.upMbps * 1e6)
const row = (v) =>
  `| ${LABEL[v]} | ${fmt(med(v, 'seconds'), 2)} | ${fmt(med(v, 'mibAfterStop'), 2)} | ${fmt(med(v, 'partsBeforeStop'), 0)} | ${fmt(med(v, 'storedMiB'), 2)} | ${results[v].map((r) => (r.ok ? fmt(r.seconds, 2) : 'failed')).join(', ')} | ${fmt(med(v, 'seconds') / med('recorder', 'seconds'), 2)}× |`
const section = `${RECORDER_BEGIN}
## Stop → \`transcribing\`: the recorder vs upload at Stop (${cfg.minutes} min recording, throttled link)

Measured by \`node benchmark/recorder-stop.mjs${argv.length ? ' ' + argv.join(' ') : ''}\`${quick ? ' (quick mode: not representative)' : ''} in one run, ${new Date().toISOString().slice(0, 10)}, commit ${sh('git rev-parse --short HEAD')}; median of ${cfg.rounds} round(s), the two variants alternating.
${chromium} (headless), the real route (the addon) on the route server with Vercel's OIDC token per request, the loopback Clerk, Convex and Blob in the benchmark's process.
Link: CDP \`Network.emulateNetworkConditions\` on the page, **${cfg.upMbps} Mbit/s up**, ${cfg.downMbps} Mbit/s down, **${cfg.latencyMs} ms** latency, for both variants (the route's own reads from Blob are not throttled, as on Vercel).
Recording: ${cfg.minutes} min of WebM/Opus (${fmt(mib, 2)} MiB, ~${fmt(kbps, 0)} kbit/s) built from the real Chromium fixture (\`chromium-20s-timeslice.webm\`: its header, then its clusters repeated with shifted timecodes), handed over in 1 s chunks by a stand-in \`MediaRecorder\` ${cfg.speed}× faster than real time (${fmt((cfg.minutes * 60) / cfg.speed, 0)} s of wall time, so the recording alone takes ${fmt((100 * kbps * cfg.speed) / 1000 / cfg.upMbps, 0)} % of the uplink, where in real time it takes ${fmt((100 * kbps) / 1000 / cfg.upMbps, 1)} %); the recorder's parts are ${cfg.partBytes / MiB} MiB.
Machine load (1-min average, ${os.cpus().length} vCPUs shared with other engineers' builds): ${fmt(loadBefore[0], 2)} before, ${fmt(loadAfter[0], 2)} after. All rounds succeeded: **${allOk ? 'yes' : 'NO'}**.

| variant | Stop → \`transcribing\` s | MiB sent after Stop | parts stored before Stop | stored MiB | each round s | ÷ recorder |
|---|---|---|---|---|---|---|
${VARIANTS.map(row).join('\n')}

Timed in the page from calling \`stop()\` to the route's answer (\`status: 'transcribing'\`, also read back from Convex), so it includes the last chunk, finalising the WebM (Duration and Cues), the bytes still to send, the multipart completion and the route's verification (the duration measured from the whole stored file). The whole file at ${cfg.upMbps} Mbit/s alone takes ${fmt(ideal, 1)} s. *MiB sent after Stop* is from the Blob store's log of parts (a part in flight at Stop counts with the share of its transfer after Stop). The recorder always has part 1 (the header, written last) and the tail after the last full part left to send, so at most two parts.
${RECORDER_END}`

fs.writeFileSync(out, replaceSection(fs.existsSync(out) ? fs.readFileSync(out, 'utf8') : '', section))
log(`wrote ${out}`)
console.log(JSON.stringify({ ok: allOk, out }))
process.exit(allOk ? 0 : 1)
