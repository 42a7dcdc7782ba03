// `npm run bench`: session-audio vs the pure-JS route vs talking to the storage directly, measured
// in one run on this machine, written to BENCHMARKS.md.
//   node benchmark/run.mjs [--quick] [--rounds N] [--out FILE]
// Every variant runs in its own process (CPU and peak RSS are read from /proc); the services run
// in another; this process is the client.
import { execSync, spawn } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { createRequire } from 'node:module'
import { upload as clientUpload } from '@vercel/blob/client'

const here = path.dirname(fileURLToPath(import.meta.url))
const repo = path.resolve(here, '..')
const argv = process.argv.slice(2)
const { values: flags } = parseArgs({
  args: argv,
  options: {
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    // `--only stream,seek-zero`: run just those scenarios and print their medians (no report
    // written); for iterating on one number while profiling.
    only: { type: 'string' },
    out: { type: 'string', default: path.join(repo, 'BENCHMARKS.md') },
  },
})
const quick = flags.quick
const rounds = Number(flags.rounds ?? (quick ? 1 : 3))
const only = flags.only?.split(',')
const out = path.resolve(flags.out)
const MiB = 1024 * 1024
const cfg = quick
  ? { bigBytes: 8 * MiB, medBytes: MiB, seeks: 20, streams: 10, uploadBytes: 8 * MiB }
  : { bigBytes: 256 * MiB, medBytes: 16 * MiB, seeks: 500, streams: 200, uploadBytes: 256 * MiB }
const LATENCY = { clerk: 30, convex: 25, blob: 15 }
const log = (...a) => console.error('[bench]', ...a)

// ---------- processes ----------
function start(script, args = [], env = {}) {
  const child = spawn(process.execPath, [path.join(here, script), ...args], {
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  const t0 = performance.now()
  const info = new Promise((resolve, reject) => {
    let buf = ''
    child.stdout.on('data', (d) => {
      buf += d
      const nl = buf.indexOf('\n')
      if (nl >= 0) resolve({ ...JSON.parse(buf.slice(0, nl)), readyMs: performance.now() - t0 })
    })
    child.on('exit', (code) => reject(new Error(`${script} exited with ${code}`)))
  })
  return { child, info, t0 }
}
const stop = (p) => p.child.kill('SIGTERM')
const procStat = (pid) => {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  const ticks = 100 // USER_HZ on Linux
  return (Number(f[11]) + Number(f[12])) / ticks // utime + stime, seconds
}
const peakRssMiB = (pid) => Number(/VmHWM:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024
const rssMiB = (pid) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024
const resetPeak = (pid) => {
  try {
    fs.writeFileSync(`/proc/${pid}/clear_refs`, '5') // resets VmHWM to the current RSS
  } catch {}
}

// ---------- HTTP client ----------
const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity })
function request(url, { method = 'GET', headers = {}, body, keepBody = false } = {}) {
  return new Promise((resolve) => {
    const t0 = performance.now()
    const req = http.request(url, { method, headers, agent }, (res) => {
      let firstByteMs = null
      let bytes = 0
      const chunks = []
      res.on('data', (c) => {
        if (firstByteMs === null) firstByteMs = performance.now() - t0
        bytes += c.length
        if (keepBody || res.statusCode >= 300) chunks.push(c)
      })
      res.on('end', () =>
        resolve({
          status: res.statusCode,
          bytes,
          firstByteMs: firstByteMs ?? performance.now() - t0,
          ms: performance.now() - t0,
          text: Buffer.concat(chunks).toString(),
        }),
      )
      res.on('error', () => resolve({ status: 0, bytes, ms: performance.now() - t0, firstByteMs: null }))
    })
    req.on('error', (e) => resolve({ status: 0, bytes: 0, ms: performance.now() - t0, error: e.message }))
    if (typeof body === 'function') body(req)
    else req.end(body)
  })
}
const post = async (base, p, body) =>
  JSON.parse(
    (await request(`${base}${p}`, { method: 'POST', body: JSON.stringify(body), keepBody: true })).text || '{}',
  )
async function getJson(url) {
  return new Promise((resolve) =>
    http.get(url, (res) => {
      let b = ''
      res.on('data', (c) => (b += c))
      res.on('end', () => resolve(JSON.parse(b)))
    }),
  )
}

// ---------- stats ----------
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]
const fmt = (x, d = 1) => (x === null || x === undefined || Number.isNaN(x) ? '—' : Number(x).toFixed(d))

// ---------- the run ----------
log(`mode: ${quick ? 'quick' : 'full'}, rounds: ${rounds}`)
const stack = start('stack-process.mjs')
const svc = await stack.info
const ctl = svc.control
const big = await post(ctl, '/file', { name: 'big.wav', bytes: cfg.bigBytes })
const med = await post(ctl, '/file', { name: 'medium.wav', bytes: cfg.medBytes })
const { token } = await post(ctl, '/token', { sub: 'user_bench' })
const bigSession = (await post(ctl, '/session', { userId: 'user_bench', file: big.pathname })).id
const medSession = (await post(ctl, '/session', { userId: 'user_bench', file: med.pathname })).id
const proxyEnv = {
  NEXT_PUBLIC_CONVEX_URL: svc.convex.url,
  CLERK_SECRET_KEY: svc.clerk.secretKey,
  CLERK_API_URL: svc.clerk.url,
  BLOB_READ_WRITE_TOKEN: svc.blob.token,
  VERCEL_BLOB_API_URL: svc.blob.apiUrl,
  SESSION_AUDIO_TRUSTED_HOSTS: svc.blob.host,
  SESSION_AUDIO_ALLOW_LOOPBACK_UPSTREAM: '1',
  SESSION_AUDIO_BLOB_ACCESS: 'public',
  SESSION_AUDIO_LOG: 'off',
  SESSION_AUDIO_MAX_UPLOAD_BYTES: String(1024 * MiB),
  SESSION_AUDIO_CONVEX_SECRET: svc.convex.secret,
}
const proxies = {}
for (const v of ['session-audio', 'pure-js']) {
  proxies[v] = start('proxy-process.mjs', [v], proxyEnv)
  proxies[v].url = (await proxies[v].info).url
}
const auth = { authorization: `Bearer ${token}` }
const audioUrl = (variant, sessionId, file) =>
  variant === 'direct' ? file.url : `${proxies[variant].url}/api/listening-sessions/${sessionId}/audio`
const pidOf = (variant) => (variant === 'direct' ? stack.child.pid : proxies[variant].child.pid)
const VARIANTS = ['session-audio', 'pure-js', 'direct']
const results = {}
const setLatency = (l) => post(ctl, '/latency', l)

const failures = []
async function scenario(name, fn) {
  if (only && !only.includes(name)) return
  log(name)
  results[name] = {}
  for (const v of VARIANTS) {
    const runs = []
    for (let r = 0; r < rounds; r++) {
      const run = await fn(v)
      if (!run.ok) {
        failures.push(`${name} ${v} round ${r + 1}: ${JSON.stringify(run)}`)
        log(`${name} ${v} round ${r + 1} FAILED: ${JSON.stringify(run)}`)
      }
      runs.push(run)
    }
    results[name][v] = runs
  }
}

// 1. Stream the big file.
await setLatency({})
await scenario('stream', async (v) => {
  const pid = pidOf(v)
  const cpu0 = procStat(pid)
  const res = await request(audioUrl(v, bigSession, big), { headers: auth })
  const cpu = procStat(pid) - cpu0
  return {
    ok: res.status === 200 && res.bytes === big.size,
    status: res.status,
    bytes: res.bytes,
    mbps: res.bytes / MiB / (res.ms / 1000),
    cpuPerGiB: cpu / (res.bytes / 1024 ** 3),
  }
})

// 2. Seek bursts, with realistic service latency and with none.
for (const [label, latency] of [
  ['seek-latency', LATENCY],
  ['seek-zero', {}],
]) {
  await setLatency(latency)
  await scenario(label, async (v) => {
    const before = await getJson(`${ctl}/counts`)
    const times = []
    let errors = 0
    for (let i = 0; i < cfg.seeks; i++) {
      const start = Math.floor(Math.random() * (med.size - 65536))
      const res = await request(audioUrl(v, medSession, med), {
        headers: { ...auth, range: `bytes=${start}-${start + 16383}` },
      })
      if (res.status !== 206 || res.bytes !== 16384) errors++
      times.push(res.ms)
    }
    const after = await getJson(`${ctl}/counts`)
    // The same number of requests to the harness floor of this variant's process.
    const floor = []
    if (v !== 'direct') {
      for (let i = 0; i < cfg.seeks; i++) floor.push((await request(audioUrl(v, '__floor', med), { headers: auth })).ms)
    }
    return {
      ok: errors === 0,
      errors,
      p50: pct(times, 50),
      p99: pct(times, 99),
      floorP50: v === 'direct' ? null : pct(floor, 50),
      clerk: after.clerk - before.clerk,
      convex: after.convex - before.convex,
    }
  })
}
await setLatency({})

// 3. Many streams at once.
await scenario('concurrency', async (v) => {
  const pid = pidOf(v)
  const idle = rssMiB(pid)
  resetPeak(pid)
  const all = await Promise.all(
    Array.from({ length: cfg.streams }, () => request(audioUrl(v, medSession, med), { headers: auth })),
  )
  const errors = all.filter((r) => r.status !== 200 || r.bytes !== med.size).length
  return {
    ok: errors === 0,
    errors,
    p99FirstByte: pct(
      all.map((r) => r.firstByteMs),
      99,
    ),
    peakRss: peakRssMiB(pid),
    peakAboveIdle: peakRssMiB(pid) - idle,
  }
})

// 4. Upload the big size.
const tone = fs.readFileSync(path.join(repo, '__test__', 'fixtures', 'audio', 'tone-5s.wav'))
await scenario('upload', async (v) => {
  const pid = pidOf(v)
  const idle = rssMiB(pid)
  resetPeak(pid)
  const total = cfg.uploadBytes
  const header = Buffer.from(tone.subarray(0, 44))
  header.writeUInt32LE(total - 8, 4)
  header.writeUInt32LE(total - 44, 40)
  const pcm = Buffer.alloc(MiB, 1)
  const body = (req) => {
    let sent = 0
    const pump = () => {
      while (sent < total) {
        const chunk = sent === 0 ? header : pcm.subarray(0, Math.min(64 * 1024, total - sent))
        sent += chunk.length
        if (!req.write(chunk)) return req.once('drain', pump)
      }
      req.end()
    }
    pump()
  }
  let url
  const headers = { 'content-length': String(total), 'x-duration-ms': '600000', 'x-content-type': 'audio/wav' }
  if (v === 'direct') {
    url = `${svc.blob.apiUrl}/?pathname=${encodeURIComponent(`direct/${Date.now()}.wav`)}`
    Object.assign(headers, {
      authorization: `Bearer ${svc.blob.token}`,
      'x-vercel-blob-access': 'public',
      'x-api-version': '12',
      'x-add-random-suffix': '1',
    })
  } else {
    const id = (await post(ctl, '/session', { userId: 'user_bench', status: 'recording' })).id
    url = audioUrl(v, id)
    Object.assign(headers, auth)
  }
  const res = await request(url, { method: v === 'direct' ? 'PUT' : 'POST', headers, body })
  const ok = v === 'direct' ? res.status === 200 : res.status === 201
  if (!ok) log(`upload ${v}: ${res.status} ${res.text}`)
  return { ok, mbps: total / MiB / (res.ms / 1000), peakAboveIdle: v === 'direct' ? null : peakRssMiB(pid) - idle }
})

// 4b. The same size through the client flow: the bytes go from the client straight to Blob with a
// token the route mints; the route only answers two small JSON events. Measured on the route
// process: what it read (all sockets, /proc/<pid>/io rchar), its CPU and peak RSS, and the time.
const rchar = (pid) => Number(/rchar:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/io`, 'utf8'))[1])
let clientFlow = null
if (!only || only.includes('client-upload')) {
  log('client-upload')
  process.env.VERCEL_BLOB_API_URL = svc.blob.apiUrl
  const total = cfg.uploadBytes
  const wav = Buffer.alloc(total, 1)
  tone.copy(wav, 0, 0, 44)
  wav.writeUInt32LE(total - 8, 4)
  wav.writeUInt32LE(total - 44, 40)
  const route = proxies['session-audio']
  const pid = route.child.pid
  const measure = async (how) => {
    const idle = rssMiB(pid)
    resetPeak(pid)
    const [cpu0, read0, t0] = [procStat(pid), rchar(pid), performance.now()]
    const ok = await how((await post(ctl, '/session', { userId: 'user_bench', status: 'recording' })).id)
    return {
      ok,
      readMiB: (rchar(pid) - read0) / MiB,
      cpu: procStat(pid) - cpu0,
      peakAboveIdle: peakRssMiB(pid) - idle,
      seconds: (performance.now() - t0) / 1000,
    }
  }
  const streamed = async (id) => {
    const headers = {
      ...auth,
      'content-length': String(total),
      'x-duration-ms': '600000',
      'x-content-type': 'audio/wav',
    }
    const res = await request(`${route.url}/api/listening-sessions/${id}/audio`, { method: 'POST', headers, body: wav })
    return res.status === 201
  }
  const direct = async (id) => {
    const routeUrl = `${route.url}/api/listening-sessions/${id}/audio`
    const stored = await clientUpload(`listening-sessions/${id}/bench.wav`, new Blob([wav], { type: 'audio/wav' }), {
      access: 'public',
      handleUploadUrl: routeUrl,
      headers: auth,
      clientPayload: JSON.stringify({ durationMs: 600000, contentType: 'audio/wav' }),
      contentType: 'audio/wav',
      multipart: true,
    })
    const done = await request(routeUrl, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'session-audio.complete-upload', payload: { url: stored.url, durationMs: 600000 } }),
    })
    return done.status === 201
  }
  clientFlow = { streamed: [], client: [] }
  for (let r = 0; r < rounds; r++) {
    for (const [key, how] of [
      ['streamed', streamed],
      ['client', direct],
    ]) {
      const run = await measure(how).catch((e) => ({ ok: false, error: String(e) }))
      if (!run.ok) failures.push(`client-upload ${key} round ${r + 1}: ${JSON.stringify(run)}`)
      clientFlow[key].push(run)
    }
  }
}
const flow = (key, field) => median(clientFlow[key].map((r) => r[field]).filter((x) => x !== undefined))

// 5. Cold start: a fresh process, to the first served (ranged) response.
await scenario('cold-start', async (v) => {
  if (v === 'direct') return { ok: true, loadMs: null, firstMs: null }
  const p = start('proxy-process.mjs', [v], proxyEnv)
  const { url, loadMs } = await p.info
  const res = await request(`${url}/api/listening-sessions/${medSession}/audio`, {
    headers: { ...auth, range: 'bytes=0-1' },
  })
  const firstMs = performance.now() - p.t0
  stop(p)
  return { ok: res.status === 206, loadMs, firstMs }
})

// 6. One process, interleaved, no proxy hop: session-audio's GET (token check, caches, upstream
// request) to a Response plus its body, against fetch() and http.get of the same range straight
// from storage. What the addon itself costs per seek, apart from any HTTP server in front of it.
let inproc = null
if (!only || only.includes('inproc')) {
  log('inproc')
  const { createAudioHandlers } = createRequire(import.meta.url)('../index.js')
  const { GET } = createAudioHandlers({
    convexUrl: svc.convex.url,
    clerkSecretKey: svc.clerk.secretKey,
    clerkApiUrl: svc.clerk.url,
    trustedHosts: [svc.blob.host],
    allowLoopbackUpstream: true,
    logLevel: 'off',
  })
  const ctx = { params: Promise.resolve({ sessionId: medSession }) }
  const times = { addon: [], fetch: [], http: [] }
  let errors = 0
  for (let i = 0; i < cfg.seeks + 20; i++) {
    const at = Math.floor(Math.random() * (med.size - 65536))
    const range = `bytes=${at}-${at + 16383}`
    const t0 = performance.now()
    const a = await GET(
      new Request(`http://app${audioUrl('session-audio', medSession, med).replace(/^http:\/\/[^/]+/, '')}`, {
        headers: { ...auth, range },
      }),
      ctx,
    )
    const aBytes = (await a.arrayBuffer()).byteLength
    const t1 = performance.now()
    const f = await fetch(med.url, { headers: { range } })
    const fBytes = (await f.arrayBuffer()).byteLength
    const t2 = performance.now()
    const h = await request(med.url, { headers: { range } })
    const t3 = performance.now()
    if (a.status !== 206 || aBytes !== 16384 || f.status !== 206 || fBytes !== 16384 || h.bytes !== 16384) errors++
    if (i < 20) continue // warm-up: keys, template token, lookup, connections
    times.addon.push(t1 - t0)
    times.fetch.push(t2 - t1)
    times.http.push(t3 - t2)
  }
  inproc = { ok: errors === 0, errors, times }
  if (errors) {
    failures.push(`inproc: ${errors} of ${cfg.seeks + 20} iterations had a failed request`)
    log(`inproc: ${errors} failed requests`)
  }
}

for (const p of Object.values(proxies)) stop(p)
stop(stack)

// ---------- report ----------
const m = (name, v, key) => median(results[name][v].map((r) => r[key]).filter((x) => x !== null && x !== undefined))
if (only) {
  for (const [name, byV] of Object.entries(results)) {
    for (const v of VARIANTS) {
      const keys = Object.keys(byV[v][0] ?? {}).filter((k) => k !== 'ok')
      console.log(name, v, Object.fromEntries(keys.map((k) => [k, fmt(m(name, v, k), 2)])))
    }
  }
  if (inproc)
    for (const [k, xs] of Object.entries(inproc.times))
      console.log('inproc', k, fmt(pct(xs, 50), 3), fmt(pct(xs, 99), 3))
  process.exit(0)
}
const allOk =
  Object.values(results).every((byV) => Object.values(byV).every((runs) => runs.every((r) => r.ok))) &&
  (!inproc || inproc.ok)
const ratio = (name, key, v, other) => {
  const a = m(name, v, key)
  const b = m(name, other, key)
  return a && b ? `${fmt(a / b, 2)}×` : '—'
}
const SEEK_COLUMNS = [
  ['p50', 'p50 ms', 2],
  ['p99', 'p99 ms', 2],
  ['floorP50', 'harness floor p50 ms', 2],
  ['clerk', 'Clerk calls', 0],
  ['convex', 'Convex calls', 0],
]
function table(name, cols, main) {
  const head = `| variant | ${cols.map(([, label]) => label).join(' | ')} | ${VARIANTS.map((v) => `÷ ${v}`).join(' | ')} |`
  const sep = `|${'---|'.repeat(cols.length + 1 + VARIANTS.length)}`
  const rows = VARIANTS.map(
    (v) =>
      `| ${v} | ${cols.map(([key, , d]) => fmt(m(name, v, key), d ?? 1)).join(' | ')} | ${VARIANTS.map((o) => (o === v ? '1×' : ratio(name, main, v, o))).join(' | ')} |`,
  )
  return [head, sep, ...rows].join('\n')
}
const versions = (() => {
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
})()
const t = (name, key) => m(name, 'session-audio', key)
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
  [`Upload peak RSS growth ≤ 64 MiB for ${cfg.uploadBytes / MiB} MiB`, t('upload', 'peakAboveIdle') <= 64],
]
const md = `# Benchmarks

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
Versions: ${versions.node}, ${versions.rustc}, ${versions.sdks}; commit ${versions.commit}.
Command: \`node benchmark/run.mjs${argv.length ? ' ' + argv.join(' ') : ''}\`. All rounds succeeded: **${allOk ? 'yes' : 'NO'}**.${failures.length ? `\nFailed rounds (the medians below include them):\n${failures.map((f) => `- ${f}`).join('\n')}` : ''}

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
upstream request and the body bridge).

## ${cfg.streams} concurrent streams of ${cfg.medBytes / MiB} MiB

${table(
  'concurrency',
  [
    ['errors', 'errors', 0],
    ['p99FirstByte', 'p99 first byte ms', 1],
    ['peakAboveIdle', 'peak RSS above idle MiB', 1],
  ],
  'p99FirstByte',
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
event: head, a 12-byte Range read, the Convex transition).

| path | read by the route process MiB | route CPU s | route peak RSS above idle MiB | total s |
|---|---|---|---|---|
| streamed \`POST\` through the route | ${fmt(flow('streamed', 'readMiB'))} | ${fmt(flow('streamed', 'cpu'), 2)} | ${fmt(flow('streamed', 'peakAboveIdle'))} | ${fmt(flow('streamed', 'seconds'), 2)} |
| client flow, straight to Blob | ${fmt(flow('client', 'readMiB'), 3)} | ${fmt(flow('client', 'cpu'), 2)} | ${fmt(flow('client', 'peakAboveIdle'))} | ${fmt(flow('client', 'seconds'), 2)} |
`
    : ''
}
## Cold start: load the handlers, serve the first request

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

## What bounds the misses

Profiled with \`perf record -e cpu-clock -g\` on the proxy process (Node with \`--perf-basic-prof\`)
while it streamed 3 × 256 MiB, before and after the fixes below (this machine has no hardware counters;
cpu-clock sampling works).

- **Streaming throughput.** Fixed, ours: every chunk was copied (\`Bytes::to_vec\`) into a fresh
  128–400 KiB allocation that glibc serves with mmap, so each chunk paid page faults on first touch
  (\`exc_page_fault\` 4.2% of samples, absent from the pure-JS proxy). Chunks now reach JS as external
  Buffers over hyper's own bytes (no copy); page faults fell to 2% (the kernel's socket copy). The
  proxy's CPU per GiB relative to the pure-JS route's went from 1.21× (2.80 vs 2.32 s, the previous
  full run) to ${fmt(t('stream', 'cpuPerGiB') / m('stream', 'pure-js', 'cpuPerGiB'), 2)}× in this one. After the fix, samples split into the
  kernel (socket copies in and out) ~47%, Node itself (its \`http\` write path, streams, V8) ~38%,
  libc ~5% and the addon's own code ~7%. So what is left is the Node \`http\` server every route
  handler sits behind, not the addon. The throughput ratio to *direct* is bounded by the machine: on
  2 cores a proxy adds a third busy process (storage, proxy, client), where *direct* has two.
  Compare CPU per GiB rather than MiB/s between proxies; the single-stream MiB/s figures here swing by
  ±40% between runs (one session measured 200–445 MiB/s for the same proxy within a minute).
- **Warm seeks vs direct.** Fixed, ours: the RSA check of the session token was ~0.5 ms of every seek
  (the Server-Timing \`auth\` phase); verified signatures are now remembered until the token's \`exp\`
  (claims are still checked on every request), and the phase is ~0. Range reads up to 64 KiB are read
  in Rust and handed over in one Buffer instead of a stream (two or three fewer async calls into the
  addon). What is left in this run: +${fmt(t('seek-zero', 'p50') - m('seek-zero', 'direct', 'p50'), 2)} ms p50
  over *direct* with no added latency, +${fmt(t('seek-latency', 'p50') - m('seek-latency', 'direct', 'p50'), 2)} ms
  with service latency. A proxy serves a seek with two HTTP exchanges where *direct* has one. The
  *harness floor* column prices the first exchange: what a Node \`http\` route costs here before it
  does anything (${fmt(t('seek-zero', 'floorP50'), 2)} ms). The second exchange is the upstream request.
  The in-process table shows that the handler's whole path costs about what a \`fetch()\` of the same
  range costs from JS, so the gap is the extra exchange, not the addon's work. Why the gap grows when
  storage answers after 15 ms is not established (UNVERIFIED, not profiled). The likeliest cost: the
  proxy's threads park while they wait, and waking parked threads on this 2-vCPU VM costs more than
  the busy ping-pong of the zero-latency run. With service latency the cached path makes no Clerk
  calls, and a Convex call only when the 5 s lookup cache expires, which is why it is ~4× faster than
  the pure-JS route there.
- **Memory with 200 streams.** Each stream may prefetch up to 256 KiB ahead of a slow reader (the byte
  budget in \`crates/core/src/body.rs\`), plus the one chunk each side holds: that is the peak above
  idle here. The pure-JS route holds less because it prefetches nothing; it pays for that in first-byte
  latency under load (the p99 column).
`
fs.writeFileSync(out, md)
log(`wrote ${out}`)
console.log(JSON.stringify({ ok: allOk, out }))
process.exit(allOk ? 0 : 1)
