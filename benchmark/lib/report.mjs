// BENCHMARKS.md from one run's results: tables of medians per variant with ratios, the client-flow
// and in-process tables, the targets as measured, and what bounds the misses. `printMedians` is the
// `--only` output (no report).
import { execSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { LATENCY, MiB, VARIANTS, repo } from './common.mjs'
import { fmt, median, pct } from './stats.mjs'

/** The median of one field over a scenario's runs for one variant (missing values ignored). */
const medianOf = (results) => (name, v, key) =>
  median(results[name][v].map((r) => r[key]).filter((x) => x !== null && x !== undefined))

/** `--only`: each scenario's medians per variant, and the in-process percentiles, on stdout. */
export function printMedians({ results, inproc }) {
  const m = medianOf(results)
  for (const [name, byV] of Object.entries(results)) {
    for (const v of VARIANTS) {
      const keys = Object.keys(byV[v][0] ?? {}).filter((k) => k !== 'ok')
      console.log(name, v, Object.fromEntries(keys.map((k) => [k, fmt(m(name, v, k), 2)])))
    }
  }
  if (inproc)
    for (const [k, xs] of Object.entries(inproc.times))
      console.log('inproc', k, fmt(pct(xs, 50), 3), fmt(pct(xs, 99), 3))
}

/** Whether every run of every scenario succeeded (the client flow and in-process runs too). */
export const allSucceeded = ({ results, clientFlow, inproc }) =>
  Object.values(results).every((byV) => Object.values(byV).every((runs) => runs.every((r) => r.ok))) &&
  (!clientFlow || Object.values(clientFlow).every((runs) => runs.every((r) => r.ok))) &&
  (!inproc || inproc.ok)

/** Commit, toolchain and SDK versions for the report's header. */
function versions() {
  const pkg = (n) => JSON.parse(fs.readFileSync(path.join(repo, 'node_modules', n, 'package.json'), 'utf8')).version
  const sh = (c) => {
    try {
      return execSync(c, { cwd: repo, encoding: 'utf8' }).trim()
    } catch {
      return '?'
    }
  }
  return {
    commit: sh('git rev-parse --short HEAD'),
    rustc: sh('rustc --version'),
    node: process.version,
    sdks: `@clerk/backend ${pkg('@clerk/backend')}, convex ${pkg('convex')}, @vercel/blob ${pkg('@vercel/blob')}`,
  }
}

const SEEK_COLUMNS = [
  ['p50', 'p50 ms', 2],
  ['p99', 'p99 ms', 2],
  ['floorP50', 'harness floor p50 ms', 2],
  ['relayP50', 'bare relay p50 ms', 2],
  ['clerk', 'Clerk calls', 0],
  ['convex', 'Convex calls', 0],
]

/**
 * The report's markdown. `argv` is the command line as given (quoted in the report), `clientFlow`
 * and `inproc` what those scenarios returned (null when not run), `kept` the recorder's section
 * from the previous report ('' when it had none; lib/sections.mjs).
 */
export function renderReport({
  quick,
  rounds,
  cfg,
  argv,
  results,
  failures,
  clientFlow,
  inproc,
  kept = '',
  load = null,
}) {
  const m = medianOf(results)
  const allOk = allSucceeded({ results, clientFlow, inproc })
  const ratio = (name, key, v, other) => {
    const a = m(name, v, key)
    const b = m(name, other, key)
    return a && b ? `${fmt(a / b, 2)}×` : '—'
  }
  function table(name, cols, main) {
    const head = `| variant | ${cols.map(([, label]) => label).join(' | ')} | ${VARIANTS.map((v) => `÷ ${v}`).join(' | ')} |`
    const sep = `|${'---|'.repeat(cols.length + 1 + VARIANTS.length)}`
    const rows = VARIANTS.map(
      (v) =>
        `| ${v} | ${cols.map(([key, , d]) => fmt(m(name, v, key), d ?? 1)).join(' | ')} | ${VARIANTS.map((o) => (o === v ? '1×' : ratio(name, main, v, o))).join(' | ')} |`,
    )
    return [head, sep, ...rows].join('\n')
  }
  const flow = (key, field) => median(clientFlow[key].map((r) => r[field]).filter((x) => x !== undefined))
  const ver = versions()
  const t = (name, key) => m(name, 'session-audio', key)
  const seekGap = t('seek-zero', 'p50') - m('seek-zero', 'direct', 'p50')
  const rssRatio = t('concurrency', 'peakRss') / m('concurrency', 'pure-js', 'peakRss')
  const idleGap = t('concurrency', 'idleRss') - m('concurrency', 'pure-js', 'idleRss')
  const cpuRatio = t('stream', 'cpuPerGiB') / m('stream', 'pure-js', 'cpuPerGiB')
  const seekLatencyGap = t('seek-latency', 'p50') - m('seek-latency', 'direct', 'p50')
  // What any proxy costs here (a relay that checks nothing, in the same process) and what the
  // route adds over it: the two parts of the gap above.
  const relayLatencyGap = t('seek-latency', 'relayP50') - m('seek-latency', 'direct', 'p50')
  const overRelay = (name) => t(name, 'p50') - t(name, 'relayP50')
  // The burst's own cost beside its memory: neither may be bought with the other.
  const firstByteRatio = t('concurrency', 'p99FirstByte') / m('concurrency', 'pure-js', 'p99FirstByte')
  const burstRatio = t('concurrency', 'mbps') / m('concurrency', 'pure-js', 'mbps')
  const targets = [
    ['Streaming throughput ≥ 0.8× direct', t('stream', 'mbps') >= 0.8 * m('stream', 'direct', 'mbps')],
    ['Streaming throughput ≥ 1.5× the pure-JS route', t('stream', 'mbps') >= 1.5 * m('stream', 'pure-js', 'mbps')],
    [
      'Warm seeks add ≤ 1 ms p50 over direct (zero added latency)',
      t('seek-zero', 'p50') - m('seek-zero', 'direct', 'p50') <= 1,
    ],
    [
      'Warm seeks add ≤ 1 ms p50 over direct (with service latency)',
      t('seek-latency', 'p50') - m('seek-latency', 'direct', 'p50') <= 1,
    ],
    [`${cfg.streams} concurrent streams with zero errors`, t('concurrency', 'errors') === 0],
    [`Peak RSS at ${cfg.streams} concurrent range streams ≤ 0.9× the pure-JS route's`, rssRatio <= 0.9],
    [`p99 first byte at ${cfg.streams} concurrent streams no worse than the pure-JS route's`, firstByteRatio <= 1],
    [`Throughput at ${cfg.streams} concurrent streams no worse than the pure-JS route's`, burstRatio >= 1],
    ["Idle RSS no higher than the pure-JS route's", idleGap <= 0],
    ["Server CPU per GiB streamed ≤ 0.6× the pure-JS route's", cpuRatio <= 0.6],
    [`Upload peak RSS growth ≤ 64 MiB for ${cfg.uploadBytes / MiB} MiB`, t('upload', 'peakAboveIdle') <= 64],
  ]
  return `# Benchmarks

Measured by \`npm run bench\`${quick ? ' (quick mode: small sizes, one round — not representative)' : ''} in one run, ${new Date().toISOString().slice(0, 10)}.
Median of ${rounds} round(s) per scenario. Every variant serves over a Node \`http\` server that does what
Next.js does with a route handler's \`Response\` (\`stack/route-server.mjs\`), each in its own process;
the Clerk-, Convex- and Blob-compatible services run in another process on 127.0.0.1.

- **session-audio**: \`createAudioHandlers()\` (this package).
- **pure-js**: the same route with the official SDKs, written the straightforward way
  (\`benchmark/pure-js-route.mjs\`): \`verifyToken\` + \`sessions.getToken(sid, 'convex')\` +
  \`ConvexHttpClient\` + \`fetch\` piped into \`new Response\`; \`put()\` for uploads.
- **direct**: the client talks to the blob storage itself, no proxy (the floor).

Machine: ${os.cpus()[0]?.model ?? '?'}, ${os.cpus().length} cores, ${Math.round(os.totalmem() / 1024 ** 3)} GiB, ${os.type()} ${os.release()}.
Versions: ${ver.node}, ${ver.rustc}, ${ver.sdks}; commit ${ver.commit}.
Command: \`node benchmark/run.mjs${argv.length ? ' ' + argv.join(' ') : ''}\`. All rounds succeeded: **${allOk ? 'yes' : 'NO'}**.${load ? `\nMachine load (1-min average, ${os.cpus().length} vCPUs shared with other engineers' builds): ${fmt(load.before, 2)} before the run, ${fmt(load.after, 2)} after.` : ''}${failures.length ? `\nFailed rounds (the medians below include them):\n${failures.map((f) => `- ${f}`).join('\n')}` : ''}

## The goals (issues 20 and 28)

| goal | measured in this run | target | met |
|---|---|---|---|
| warm seek, zero added latency: session-audio p50 − direct p50 | ${fmt(seekGap, 2)} ms (${fmt(t('seek-zero', 'p50'), 2)} vs ${fmt(m('seek-zero', 'direct', 'p50'), 2)} ms; ${fmt(t('seek-zero', 'p50') / m('seek-zero', 'direct', 'p50'), 2)}×; harness floor ${fmt(t('seek-zero', 'floorP50'), 2)} ms) | ≤ 1.0 ms | ${seekGap <= 1 ? '✅' : '❌'} |
| warm seek, service latency on: session-audio p50 − direct p50 | ${fmt(seekLatencyGap, 2)} ms (${fmt(t('seek-latency', 'p50'), 2)} vs ${fmt(m('seek-latency', 'direct', 'p50'), 2)} ms) | ≤ 1.0 ms | ${seekLatencyGap <= 1 ? '✅' : '❌'} |
| (beside it) a bare relay that checks nothing, latency on: relay p50 − direct p50 | ${fmt(relayLatencyGap, 2)} ms (${fmt(t('seek-latency', 'relayP50'), 2)} ms) | — | — |
| (beside it) what session-audio adds over that relay, latency on / zero latency | ${fmt(overRelay('seek-latency'), 2)} / ${fmt(overRelay('seek-zero'), 2)} ms | — | — |
| server CPU per GiB streamed, session-audio ÷ pure-js | ${fmt(cpuRatio, 2)}× (${fmt(t('stream', 'cpuPerGiB'), 2)} vs ${fmt(m('stream', 'pure-js', 'cpuPerGiB'), 2)} s/GiB) | ≤ 0.6× | ${cpuRatio <= 0.6 ? '✅' : '❌'} |
| peak RSS at ${cfg.streams} concurrent ${cfg.rangeBytes / MiB} MiB range streams, session-audio ÷ pure-js | ${fmt(rssRatio, 2)}× (${fmt(t('concurrency', 'peakRss'))} vs ${fmt(m('concurrency', 'pure-js', 'peakRss'))} MiB) | ≤ 0.9× | ${rssRatio <= 0.9 ? '✅' : '❌'} |
| p99 first byte at ${cfg.streams} concurrent streams, session-audio ÷ pure-js | ${fmt(firstByteRatio, 2)}× (${fmt(t('concurrency', 'p99FirstByte'), 1)} vs ${fmt(m('concurrency', 'pure-js', 'p99FirstByte'), 1)} ms) | ≤ 1× | ${firstByteRatio <= 1 ? '✅' : '❌'} |
| throughput at ${cfg.streams} concurrent streams, session-audio ÷ pure-js | ${fmt(burstRatio, 2)}× (${fmt(t('concurrency', 'mbps'), 1)} vs ${fmt(m('concurrency', 'pure-js', 'mbps'), 1)} MiB/s) | ≥ 1× | ${burstRatio >= 1 ? '✅' : '❌'} |
| idle RSS before that burst, session-audio − pure-js | ${fmt(idleGap, 1)} MiB (${fmt(t('concurrency', 'idleRss'))} vs ${fmt(m('concurrency', 'pure-js', 'idleRss'))} MiB) | ≤ 0 | ${idleGap <= 0 ? '✅' : '❌'} |
| addon load time (the JS SDKs' beside it) | ${fmt(t('cold-start', 'loadMs'), 1)} ms (pure-js: ${fmt(m('cold-start', 'pure-js', 'loadMs'), 1)} ms) | keep it | — |

## Stream ${cfg.bigBytes / MiB} MiB

${table(
  'stream',
  [
    ['mbps', 'MiB/s'],
    ['cpuPerGiB', 'CPU s/GiB (server process)', 2],
  ],
  'mbps',
)}

Ratios are of throughput. For *direct*, CPU is the storage process's.

## Seek burst: ${cfg.seeks} sequential 16 KiB Range requests

With service latency (Clerk Backend API ${LATENCY.clerk} ms, Convex ${LATENCY.convex} ms, blob first byte ${LATENCY.blob} ms):

${table('seek-latency', SEEK_COLUMNS, 'p50')}

With zero added latency:

${table('seek-zero', SEEK_COLUMNS, 'p50')}

session-audio's calls are the first request's (JWKS, template token, lookup) plus one lookup each
time its 5 s cache expires during the burst; the pure-JS route pays a token mint and a query per seek.

*Harness floor*: the same process answering 16 KiB from memory through the same Node \`http\` server,
without any handler: what any route costs here before it does anything. What a proxy adds over
*direct* beyond its floor is its own work (for session-audio: the token check, cache hits, the
upstream request and the body bridge). *Bare relay* (session-audio's process only): the same seeks
through a handler that fetches the range from storage with \`node:http\` over a keep-alive
connection and answers it, checking nothing (\`__relay\` in \`benchmark/proxy-process.mjs\`): the
least any proxy in front of the storage costs in this harness.

## ${cfg.streams} concurrent range streams of ${cfg.rangeBytes / MiB} MiB

Each request asks for its own ${cfg.rangeBytes / MiB} MiB range of the ${cfg.medBytes / MiB} MiB file, all at once. Ratios are of
peak RSS (VmHWM of the process doing the work, reset to its current RSS before the burst).
*RSS before* is what the process held after the scenarios above (its idle RSS). The V8 columns are
the proxy's \`process.memoryUsage()\` sampled every ~20 ms during the burst: what V8 counts as
external memory when it decides to collect.

${table(
  'concurrency',
  [
    ['errors', 'errors', 0],
    ['p99FirstByte', 'p99 first byte ms', 1],
    ['mbps', 'MiB/s (all streams)', 1],
    ['idleRss', 'RSS before MiB', 1],
    ['peakRss', 'peak RSS MiB', 1],
    ['peakAboveIdle', 'peak above before MiB', 1],
    ['peakExternal', 'peak V8 external MiB', 1],
    ['peakArrayBuffers', 'peak V8 arrayBuffers MiB', 1],
    ['settledRss', 'RSS 1 s after MiB', 1],
  ],
  'peakRss',
)}

## Upload ${cfg.uploadBytes / MiB} MiB

${table(
  'upload',
  [
    ['mbps', 'MiB/s'],
    ['peakAboveIdle', 'peak RSS above idle MiB', 1],
  ],
  'mbps',
)}

*direct* is a \`PUT\` straight to the Blob API.
${
  clientFlow
    ? `
### The same ${cfg.uploadBytes / MiB} MiB straight to Blob (client uploads)

session-audio only, on its route process: the streamed \`POST\` above, next to the client flow
(\`upload()\` from \`@vercel/blob/client\`, multipart, with a token the route mints, then the completion
event: head, what the duration meter must read (for this WAV, its header), the Convex transition).

| path | read by the route process MiB | route CPU s | route peak RSS above idle MiB | total s |
|---|---|---|---|---|
| streamed \`POST\` through the route | ${fmt(flow('streamed', 'readMiB'))} | ${fmt(flow('streamed', 'cpu'), 2)} | ${fmt(flow('streamed', 'peakAboveIdle'))} | ${fmt(flow('streamed', 'seconds'), 2)} |
| client flow, straight to Blob | ${fmt(flow('client', 'readMiB'), 3)} | ${fmt(flow('client', 'cpu'), 2)} | ${fmt(flow('client', 'peakAboveIdle'))} | ${fmt(flow('client', 'seconds'), 2)} |
`
    : ''
}
${kept ? `${kept}\n\n` : ''}## Cold start: load the handlers, serve the first request

${table(
  'cold-start',
  [
    ['loadMs', 'load ms', 1],
    ['firstMs', 'process start → first response ms', 1],
  ],
  'firstMs',
)}

## Per seek inside one process (no HTTP server in front)

${
  inproc
    ? `${cfg.seeks} interleaved 16 KiB Range reads of the same file in the benchmark's own process:

| path | p50 ms | p99 ms |
|---|---|---|
| session-audio \`GET\` → \`Response\` + body (token check, caches, upstream request) | ${fmt(pct(inproc.times.addon, 50), 3)} | ${fmt(pct(inproc.times.addon, 99), 3)} |
| \`fetch()\` of the same range straight from storage | ${fmt(pct(inproc.times.fetch, 50), 3)} | ${fmt(pct(inproc.times.fetch, 99), 3)} |
| \`http.get\` of the same range straight from storage | ${fmt(pct(inproc.times.http, 50), 3)} | ${fmt(pct(inproc.times.http, 99), 3)} |

The whole handler costs about what one \`fetch()\` of the range costs from JS.`
    : '(not run)'
}

## Targets (the issue's; measured, not asserted)

${targets.map(([what, ok]) => `- ${ok ? '✅' : '❌'} ${what}`).join('\n')}

## Where the time and memory go (issue 28)

Profiled on this 2-vCPU VM while other engineers' builds ran (1-min load 4–7): \`perf stat\` and
\`perf record -e cpu-clock -g\` on the route process (3 × 256 MiB streamed), \`strace\` of its reads
and syscalls, \`/proc/<pid>/smaps\` sampled during a ${cfg.streams}-stream burst, and the route's own
\`Server-Timing\` phases per seek. Single-run CPU figures swing by ±30 % there; counts (context
switches, read sizes) are steadier than times.

- **Memory with ${cfg.streams} streams.** (1) hyper's read buffer per upstream connection: with reqwest it
  grew to hyper's default maximum (417 792 bytes) on every connection whose reader lagged. The
  playback upstream is now hyper-util's client with \`http1_max_buf_size\` 64 KiB
  (\`crates/core/src/playback/upstream.rs\`); strace of one ${cfg.streams}-stream burst: 7 750 of
  8 252 upstream reads asked for 65 536 bytes, none for 417 792, the largest for 122 880 (hyper
  reserving a fresh buffer while JS still held a view of the old one). (2) A reader that does not
  keep up gets pieces of at most 64 KiB that the JS thread copies into Buffers V8 allocates as they
  cross (\`handover\` in \`playback/body.rs\`, \`JsChunk\` in \`src/body_reader.rs\`); a reader at the
  full budget takes hyper's bytes whole, shared. Copied on tokio's workers instead (before), the
  ~12 700 copies of a burst (a \`malloc\` uprobe: 64 KiB each) lived in the two workers' glibc
  arenas until V8 collected them, and smaps at the peak showed those arenas at ~107 MiB (the main
  heap 12 MiB, V8's pages 19 MiB, mapped files 45–51 MiB). Copied on the JS thread, the arenas held
  27–41 MiB at the peak and the main heap 49–71 MiB; the burst's peak RSS fell from 176–200 to
  163–181 MiB (three runs of 3 bursts each, the first two alternated with the old build), but in
  the bench's own order (after the stream and seek scenarios; \`--only stream,seek-latency,seek-zero,concurrency\`,
  3 rounds) the two builds peaked alike (190.9 MiB before, 193.5 after): what sets the peak there is
  not known yet. (3) All streams'
  prefetch budgets share 1 MiB (\`budget_cap\`): ${cfg.streams} streams stay at 32 KiB each. (4) Idle:
  \`malloc_trim(0)\` once no stream runs and none started for 250 ms (tokio workers' glibc arenas
  otherwise keep their free memory; \`playback/trim.rs\`; before, the timer looked only at whether
  streams ran when it fired, and trimmed between sequential streamed seeks: ~150 trims per 2 000
  seeks of 128 KiB, now 2), and at most 16 idle upstream connections. V8 counts the chunks JS
  holds as array buffers now (the columns above), where before they were external memory; the pure-JS
  route's are array buffers too. This run: peak ${fmt(rssRatio, 2)}× the pure-JS route's, p99 first
  byte ${fmt(firstByteRatio, 2)}×, throughput ${fmt(burstRatio, 2)}×.
- **p99 first byte at ${cfg.streams} streams.** The wait is before the upstream's response headers, not in
  the body bridge: per stream, the route's \`Server-Timing\` \`upstream\` phase is within 60–270 ms of
  its first byte, p99 1.5–2.0 s, and first bytes grow with the order the requests were sent in
  (deciles 60 ms … 1.8 s), one stream start per ~9 ms. With 16 idle connections kept, ~184 of
  the ${cfg.streams} streams open a fresh connection to the storage, and the stack's Node storage server
  answers fresh connections late while it streams to the others: *direct*'s own first round,
  on fresh connections, has p99 first byte 1.3 s against 91 ms on its reused ones. With 256 idle
  connections kept (an experiment, not kept), rounds on reused connections had p99 first byte
  150–300 ms (5–10× better), ~1.15× the throughput and ~13 % less CPU, but peak RSS
  200–303 MiB (median ~255) against 163–204 with 16: all ${cfg.streams} streams then run at once from
  the start, and the two tokio workers' glibc arenas fill their 64 MiB heaps (smaps at the peak: 106–124 MiB
  in them, of which V8 counted 40–90 MiB as external). Neither skipping the copies for slow
  readers, nor 32 KiB reads and copies, nor telling V8 each chunk costs 2–4× its size (more
  frequent GCs: external ~10 MiB at the peak, but the arenas stayed as large and CPU rose 20 %)
  brought that peak under the pure-JS route's. Reusing connections trades the RSS goal for the
  first-byte and throughput goals on this machine; open.
- **CPU per GiB.** Samples in the route process streaming: kernel ~57 % (\`finish_task_switch\`
  alone 14 %: switching threads; the socket copies \`_copy_to_iter\`/\`_copy_from_iter\` ~10 %),
  Node ~28 %, the addon's own code ~6 %, libc ~5 %; by thread, the JS thread 62 %, the tokio
  workers 38 %. \`perf stat\`: ~50 k context switches per 768 MiB against ~9 k for the pure-JS
  route. Every chunk the JS side does not find waiting (\`tryRead\`) costs an awaited \`read()\`:
  a wake of a tokio worker and a wake of the JS thread back. Neither the 64 KiB read bound nor
  the copies for slow readers changed it (A/B on one stream: the same switches and CPU per GiB
  within the noise, with hyper's default buffer and without copies). The cost is hand-offs per GiB,
  not work per byte. Handing JS every buffered chunk per call (up to 128 KiB, \`BATCH_MAX\`), an
  awaited \`read()\` yielding to tokio once so the pump can queue the next chunk for the same
  wake: ~52 k → ~39 k switches per GiB and 2.00 → 1.72 s CPU per GiB (medians of alternated
  runs on one stream, load 2–8; without the yield ~43 k and 1.96 s). One tokio
  worker halved the switches but made the ${cfg.streams}-stream burst worse than the pure-JS route's
  (p99 first byte ~1.9 s vs ~1.5 s), so the runtime keeps a worker per core. This run:
  ${fmt(cpuRatio, 2)}× the pure-JS route's CPU per GiB. That ratio is decided mostly by the baseline:
  in 8 runs of \`--only stream --rounds 3\` on one afternoon (2026-12-06, load ~1–2) session-audio
  took 1.84–2.08 s per GiB and the pure-JS route 1.48–3.68 (1.48, 1.80, 2.12, 2.36, 2.48, 2.96, 3.44,
  3.68). A prefetch of 1 MiB instead of 256 KiB for a reader that keeps up (batches of 512 KiB)
  changed neither session-audio's CPU per GiB nor its throughput (alternated runs).
- **Warm seek with service latency.** +${fmt(seekLatencyGap, 2)} ms over *direct* in this run against
  +${fmt(seekGap, 2)} ms with zero latency (harness floor ${fmt(t('seek-zero', 'floorP50'), 2)} ms). A relay that checks
  nothing, in the same process behind the same harness (*bare relay* above), is +${fmt(relayLatencyGap, 2)} ms over
  *direct*: that is what putting any proxy in front of the storage costs here, and session-audio
  adds ${fmt(overRelay('seek-latency'), 2)} ms over it with latency (${fmt(overRelay('seek-zero'), 2)} ms with none). So the goal of
  ≤ 1.0 ms over *direct* with latency on is below what a proxy that does nothing reaches on this
  machine; the route's own checks and bridge are the small part of the gap. Where a seek's time
  goes, from \`perf sched timehist\` of the route, the client and the storage over 200 seeks
  (median per seek, latency on vs zero latency): the JS thread from the client's request to the
  hand-off to tokio 0.39 vs 0.22 ms; a tokio worker up to the request written to storage 0.17 vs
  0.10; storage (its 15 ms timer, its file read) 16.4 vs 0.47; the worker from storage's answer to
  waking the JS thread 0.19 vs 0.08; the JS thread from that wake to the answer written 0.68 vs
  0.25. The same code takes 2–3× as long after 15 ms idle as in the zero-latency ping-pong, and
  most of it runs on the JS thread: by \`perf record\`, \`index.js\`'s \`get\` (with the \`Response\`
  it builds) is about a quarter of the JS thread's samples, the rest Node's HTTP server, the
  harness's Next-style \`Request\`/\`Response\` conversion and the event loop, which any route pays.
  A handler that answers from memory after a 15 ms timer took 16.4–17.0 ms, as long as *direct*.
  Tried without effect beyond the noise (A/B, alternated, ±0.4 ms): one tokio worker instead of
  two, \`Server-Timing\` off. strace showed each request's 15 s upstream timeout waking the
  timer-driver thread; a task that keeps a 5 s sleep pending (the timer anchor, \`anchor_period\`
  in \`playback/upstream.rs\`) removed that wake (per seek: \`futex\` 4.6 → 2.85 calls, \`write\`
  1.70 → 1.08), without moving the p50 beyond the noise.
`
}
