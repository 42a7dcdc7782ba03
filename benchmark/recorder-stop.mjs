// `npm run bench:recorder`: how long a user waits after Stop until the session is `transcribing`,
// with the recorder of `session-audio/client` (parts uploaded while recording, part 1 first, only
// what did not go up sent after Stop), for recordings of several lengths on slow uplinks: one cell
// per length × uplink. `--at-stop` adds, per cell, the simple path (the whole recording handed to
// `uploadSessionAudio` after Stop). One run, written into BENCHMARKS.md as its own section (between
// markers that `npm run bench` keeps).
//   node benchmark/recorder-stop.mjs [--quick] [--rounds N] [--minutes M[,M…]] [--up-mbps U[,U…]]
//                                    [--speed S] [--latency-ms L] [--part-mib P] [--at-stop] [--out FILE]
// In Debian's Chromium (lib/browser-stack.mjs): the real route with the addon, the loopback
// services, the link throttled with CDP Network.emulateNetworkConditions. The recording is the
// real Chromium fixture repeated to M minutes (lib/long-webm.mjs), replayed S× faster than real
// time by a stand-in MediaRecorder (lib/simulated-recorder.js). --quick: one 2 min cell at 24×
// with 512 KiB parts, one round, both variants, for the test that keeps this runnable (timings
// not asserted).
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { execSync } from 'node:child_process'
import { MiB, benchDir, benchFlags, log, repo } from './lib/common.mjs'
import { longWebm } from './lib/long-webm.mjs'
import { startBrowserStack } from './lib/browser-stack.mjs'
import { CHROMIUM } from '../stack/chromium.mjs'
import { createWebmFinaliser } from '../client/finalise/webm.mjs'
import { median, fmt } from './lib/stats.mjs'
import { RECORDER_BEGIN, RECORDER_END, replaceSection } from './lib/sections.mjs'

const { argv, flags } = benchFlags({
  minutes: { type: 'string' },
  speed: { type: 'string' },
  'up-mbps': { type: 'string' },
  'latency-ms': { type: 'string' },
  'part-mib': { type: 'string' },
  'at-stop': { type: 'boolean', default: false },
})
const quick = flags.quick
const list = (value, otherwise) => (value === undefined ? otherwise : String(value).split(',').map(Number))
const cfg = {
  rounds: Number(flags.rounds ?? (quick ? 1 : 3)),
  minutes: list(flags.minutes, quick ? [2] : [5, 17, 30]),
  upMbps: list(flags['up-mbps'], quick ? [10] : [3, 10]),
  // 20×: 30 min in 90 s of wall time. Stop is pressed once every full part is stored (see
  // `linkIdleAtStop`), so the speed changes only how busy the link is while recording.
  speed: Number(flags.speed ?? (quick ? 24 : 20)),
  // The recorder's default (Blob's minimum); small in quick mode so 2 min of audio still makes
  // several parts.
  partBytes: flags['part-mib'] ? Number(flags['part-mib']) * MiB : quick ? 512 * 1024 : 5 * MiB,
  downMbps: 50,
  latencyMs: Number(flags['latency-ms'] ?? 40),
  atStop: quick || flags['at-stop'],
}
const out = path.resolve(flags.out)

/** Each length's recording, what the recorder's upload stream makes of it, and where it is served. */
const recordings = new Map(
  cfg.minutes.map((m) => {
    const rec = longWebm(m)
    const f = createWebmFinaliser()
    f.push(rec.bytes)
    // Upload-stream bytes written by Stop (the header region, then the recording from its first
    // Cluster); the Cues come after.
    const written = rec.bytes.length - f.inputDataStart + f.headerLength
    return [m, { ...rec, written, path: `/bench/recording-${m}.webm` }]
  }),
)
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
    ...Object.fromEntries(
      [...recordings.values()].map((r) => [r.path, { type: 'audio/webm', body: Buffer.from(r.bytes) }]),
    ),
  },
})

/**
 * The route's Server-Timing of the completion that attached each session's blob, in ms per phase:
 * the browser's `session-audio.complete-upload` or Blob's `blob.upload-completed` webhook, whichever
 * took the blob's turn (the other is answered from the session); the one that measured the file.
 */
const completionTiming = new Map()
const post = stack.handlers.POST
stack.handlers.POST = async (req, ctx) => {
  if (!/json/.test(req.headers.get('content-type') ?? '')) return post(req, ctx)
  const text = await req.text()
  const res = await post(new Request(req.url, { method: 'POST', headers: req.headers, body: text }), ctx)
  if (/"(session-audio\.complete-upload|blob\.upload-completed)"/.test(text)) {
    const phases = {}
    for (const entry of (res.headers.get('server-timing') ?? '').split(',')) {
      const [name, ...params] = entry.trim().split(';')
      const dur = params.find((p) => p.startsWith('dur='))
      if (name && dur) phases[name] = (phases[name] ?? 0) + Number(dur.slice(4))
    }
    const { sessionId } = await ctx.params
    if (phases.measure !== undefined || !completionTiming.has(sessionId)) completionTiming.set(sessionId, phases)
  }
  return res
}

/**
 * Whether, in real time, every full part is stored when Stop is pressed: recording the bytes
 * written after the last full part (at the recording's bit rate) takes longer than sending a part
 * on the uplink. Then waiting for the link to go idle before Stop, as the benchmark does, is what
 * real time gives; where it is not, real time would have the last full part still in flight (the
 * table says so).
 */
function linkIdleAtStop(rec, upMbps) {
  const afterLastPart = rec.written % cfg.partBytes
  const recordSeconds = (afterLastPart * 8) / ((rec.bytes.length * 8) / (rec.durationMs / 1000))
  const sendSeconds = (cfg.partBytes * 8) / (upMbps * 1e6)
  return rec.written < cfg.partBytes || recordSeconds >= sendSeconds
}

/** What one variant does in the page, from start() to the route's answer; timed from stop(). */
async function inPage(page, variant, sessionId, rec) {
  return page.evaluate(
    async ([variant, id, opts]) => {
      const w = window
      const stream = new AudioContext().createMediaStreamDestination().stream
      if (variant === 'recorder') {
        let uploaded = 0
        const r = w.client.createSessionRecorder(id, {
          stream,
          blobApiUrl: opts.apiUrl,
          partSizeBytes: opts.partBytes,
          onProgress: (p) => (uploaded = p.uploadedBytes),
        })
        await r.start()
        await w.simulatedDone
        // Stop once every full part is stored, as in real time (linkIdleAtStop), at most 2 min.
        const idleFrom = w.realNow()
        while (uploaded < opts.fullParts * opts.partBytes && w.realNow() - idleFrom < 120_000)
          await new Promise((done) => setTimeout(done, 20))
        const stopAt = Date.now()
        const t0 = w.realNow()
        const result = await r.stop()
        return { ms: w.realNow() - t0, stopAt, result, stats: r.stats, idleWaitMs: t0 - idleFrom }
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
      const stopAt = Date.now()
      const t0 = w.realNow()
      const stopped = new Promise((r) => (media.onstop = r))
      media.stop()
      await stopped
      const blob = new Blob(chunks, { type: media.mimeType })
      const result = await w.client.uploadSessionAudio(id, blob, { durationMs: opts.durationMs })
      return { ms: w.realNow() - t0, stopAt, result, stats: null, idleWaitMs: 0 }
    },
    [
      variant,
      sessionId,
      {
        apiUrl: stack.blob.apiUrl,
        partBytes: cfg.partBytes,
        durationMs: rec.durationMs,
        fullParts: Math.floor(rec.written / cfg.partBytes),
      },
    ],
  )
}

/**
 * Bytes that went to Blob after `stopAt`, from the store's own log (the browser's multipart
 * upload, not the one the route makes when it rewrites the file): a part in flight at Stop counts
 * with the share of its transfer time after Stop (the throttled link sends at a constant rate).
 */
function bytesAfter(sessionId, stopAt, storedSize) {
  const mpu = stack.blob.multipart.find(
    (m) => m.pathname.includes(`listening-sessions/${sessionId}/`) && !m.pathname.includes('.final.'),
  )
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

/** The route's rewrite phase (named for the rewrite, as the route reports it), in seconds; null when it made none. */
const rewriteSeconds = (phases) => {
  const ms = Object.entries(phases).reduce((a, [name, dur]) => (/rewrite/i.test(name) ? a + dur : a), 0)
  return Object.keys(phases).some((n) => /rewrite/i.test(n)) ? ms / 1000 : null
}

async function run(variant, cell) {
  const rec = recordings.get(cell.minutes)
  const page = await stack.newPage()
  try {
    // The recording reaches the page before the link is throttled: it stands for the microphone.
    await page.evaluate(
      async ([url, speed]) => {
        const res = await fetch(url)
        window.simulatedSource = { blob: await res.blob(), ends: null, speed }
      },
      [rec.path, cfg.speed],
    )
    await page.evaluate((ends) => (window.simulatedSource.ends = ends), rec.chunkEnds)
    const cdp = await stack.context.newCDPSession(page)
    await cdp.send('Network.enable')
    await cdp.send('Network.emulateNetworkConditions', {
      offline: false,
      latency: cfg.latencyMs,
      uploadThroughput: (cell.upMbps * 1e6) / 8,
      downloadThroughput: (cfg.downMbps * 1e6) / 8,
    })
    const id = await stack.recordingSession()
    const r = await inPage(page, variant, id, rec)
    const doc = await stack.getSession(id)
    const sent = bytesAfter(id, r.stopAt, r.result.sizeBytes)
    const phases = completionTiming.get(id) ?? {}
    const ok =
      r.result.status === 'transcribing' &&
      doc?.status === 'transcribing' &&
      Math.abs(r.result.durationMs - rec.durationMs) <= rec.durationMs * 0.01
    return {
      ok,
      seconds: r.ms / 1000,
      mibAfterStop: sent.bytes / MiB,
      partsBeforeStop: sent.partsBefore,
      storedMiB: r.result.sizeBytes / MiB,
      durationMs: r.result.durationMs,
      measureSeconds: phases.measure !== undefined ? phases.measure / 1000 : null,
      rewriteSeconds: rewriteSeconds(phases),
      idleWaitSeconds: r.idleWaitMs / 1000,
      maxHeldMiB: r.stats ? r.stats.maxHeldBytes / MiB : null,
      phases,
    }
  } catch (err) {
    return { ok: false, error: String(err?.stack ?? err) }
  } finally {
    await page.close().catch(() => {})
  }
}

const VARIANTS = cfg.atStop ? ['recorder', 'at-stop'] : ['recorder']
const LABEL = {
  recorder: '`createSessionRecorder` (parts uploaded while recording)',
  'at-stop': '`uploadSessionAudio` of the whole recording after Stop',
}
const cells = cfg.minutes.flatMap((minutes) => cfg.upMbps.map((upMbps) => ({ minutes, upMbps })))
const key = (cell, v) => `${cell.minutes}|${cell.upMbps}|${v}`
const loadBefore = os.loadavg()
log(
  `recorder-stop: ${cells.length} cell(s) (${cfg.minutes.join(', ')} min × ${cfg.upMbps.join(', ')} Mbit/s up) at ${cfg.speed}×, ${cfg.latencyMs} ms, ${cfg.rounds} round(s), ${VARIANTS.join(' and ')}`,
)
const results = new Map()
for (let round = 0; round < cfg.rounds; round++) {
  for (const cell of cells) {
    // Alternate which goes first, so neither always runs on the warmer machine.
    for (const v of round % 2 ? [...VARIANTS].reverse() : VARIANTS) {
      const r = await run(v, cell)
      log(`round ${round + 1} ${cell.minutes} min ${cell.upMbps} Mbit/s ${v}: ${JSON.stringify(r)}`)
      if (!results.has(key(cell, v))) results.set(key(cell, v), [])
      results.get(key(cell, v)).push(r)
    }
  }
}
const loadAfter = os.loadavg()
await stack.close()

const allOk = [...results.values()].every((rs) => rs.every((r) => r.ok))
const med = (cell, v, k) =>
  median(
    results
      .get(key(cell, v))
      .map((r) => r[k])
      .filter((x) => typeof x === 'number'),
  )
const sh = (c) => {
  try {
    return execSync(c, { cwd: repo, encoding: 'utf8' }).trim()
  } catch {
    return '?'
  }
}
const chromium = sh(`${CHROMIUM} --version 2>/dev/null`)
const anyRec = recordings.get(cfg.minutes[0])
const kbps = (anyRec.bytes.length * 8) / anyRec.durationMs
const row = (cell, v) => {
  const rec = recordings.get(cell.minutes)
  const whole = (rec.bytes.length * 8) / (cell.upMbps * 1e6)
  const rounds = results
    .get(key(cell, v))
    .map((r) => (r.ok ? fmt(r.seconds, 2) : 'failed'))
    .join(', ')
  const idle = v === 'recorder' ? (linkIdleAtStop(rec, cell.upMbps) ? 'yes' : 'no') : '—'
  return `| ${cell.minutes} min (${fmt(rec.bytes.length / MiB, 2)} MiB) | ${cell.upMbps} | ${LABEL[v]} | **${fmt(med(cell, v, 'seconds'), 2)}** | ${fmt(med(cell, v, 'mibAfterStop'), 2)} | ${fmt(med(cell, v, 'measureSeconds'), 2)} | ${fmt(med(cell, v, 'rewriteSeconds'), 2)} | ${fmt(med(cell, v, 'partsBeforeStop'), 0)} | ${idle} | ${fmt(whole, 1)} | ${rounds} |`
}
const rows = cells.flatMap((cell) => VARIANTS.map((v) => row(cell, v)))
const section = `${RECORDER_BEGIN}
## Stop → \`transcribing\`: the recorder, by recording length and uplink (throttled link)

Measured by \`node benchmark/recorder-stop.mjs${argv.length ? ' ' + argv.join(' ') : ''}\`${quick ? ' (quick mode: not representative)' : ''} in one run, ${new Date().toISOString().slice(0, 10)}, commit ${sh('git rev-parse --short HEAD')}; median of ${cfg.rounds} round(s) per cell${VARIANTS.length > 1 ? ', the variants alternating' : ''}.
${chromium} (headless), the real route (the addon) on the route server with Vercel's OIDC token per request, the loopback Clerk, Convex and Blob in the benchmark's process.
Link: CDP \`Network.emulateNetworkConditions\` on the page, the uplink of each row, ${cfg.downMbps} Mbit/s down, **${cfg.latencyMs} ms** latency (the route's own reads from and writes to Blob are not throttled, as inside Vercel's region).
Recordings: WebM/Opus (~${fmt(kbps, 0)} kbit/s) built from the real Chromium fixture (\`chromium-20s-timeslice.webm\`: its header, then its clusters repeated with shifted timecodes), handed over in 1 s chunks by a stand-in \`MediaRecorder\` ${cfg.speed}× faster than real time; the recorder's parts are ${fmt(cfg.partBytes / MiB, 2)} MiB. Stop is pressed once every full part is stored (the page waits for the link to go idle after the last chunk): in real time that is so whenever recording the bytes after the last full part takes longer than sending a part (*idle at Stop in real time*), so the faster replay changes only how busy the link is while recording.
Machine load (1-min average, ${os.cpus().length} vCPUs shared with other engineers' builds): ${fmt(loadBefore[0], 2)} before, ${fmt(loadAfter[0], 2)} after. All rounds succeeded: **${allOk ? 'yes' : 'NO'}**.

| recording | up Mbit/s | variant | Stop → \`transcribing\` s | MiB sent after Stop | route: read and measure s | route: rewrite s | parts stored before Stop | idle at Stop in real time | whole file on the uplink s | each round s |
|---|---|---|---|---|---|---|---|---|---|---|
${rows.join('\n')}

Timed in the page from calling \`stop()\` to the route's answer (\`status: 'transcribing'\`, also read back from Convex), so it includes the last chunk, finalising the WebM, the bytes still to send (for a recording that fits one part, the whole of it in one \`PUT\`), the multipart completion and the route's completion: it reads the stored file once to measure its duration (*read and measure*, its \`measure\` phase) and, when the file's header region is the provisional one part 1 went up with, writes the final file as a new blob (*rewrite*, its rewrite phase; — where it made none), both from the route's \`Server-Timing\`. *MiB sent after Stop* is from the Blob store's log of the browser's parts (a part in flight at Stop counts with the share of its transfer after Stop). *Whole file on the uplink*: what sending the whole recording after Stop would take on that link alone.
${RECORDER_END}`

fs.writeFileSync(out, replaceSection(fs.existsSync(out) ? fs.readFileSync(out, 'utf8') : '', section))
log(`wrote ${out}`)
console.log(JSON.stringify({ ok: allOk, out }))
process.exit(allOk ? 0 : 1)
