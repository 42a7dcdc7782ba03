// What a direct reader of the stored blob gets from each Stop → transcribing design
// (docs/stop-to-transcribing.md): the files each design would store, served by a plain static server
// with Range support, played in Chromium, Firefox ESR and WebKitGTK. For each file and engine it
// records `duration` at `loadedmetadata`, whether a seek to 80 % lands and playback goes on from
// there, and how many bytes the player fetched before the seek completed (and which ranges).
//
// The files, from the real recordings in __test__/fixtures/audio/ made 3 minutes long (the media
// repeated with shifted times: benchmark/lib/long-webm.mjs for WebM, `longMp4` here for MP4):
// - `final`: what is stored today (the final header region: Duration, SeekHead → Cues; durations
//   and a sidx). Also what a route that overlays the final header region relays.
// - `provisional`: what would be stored if part 1 went up while recording (the provisional header
//   region: no Duration, no SeekHead, a Void; durations 0, a `free` box, no sidx), with the Cues
//   (WebM) appended at Stop as today. Same length as `final`, every byte after the header region equal.
// - `raw`: MediaRecorder's own bytes, for comparison.
//
// A probe, not a test: `npm run probe:stop-reader` (STOP_READER_ENGINES=chromium,firefox,webkit;
// STOP_READER_PRELOAD=metadata,auto; STOP_READER_KBPS: the server's rate per response in KiB/s, 256 by
// default, slow enough that the seek target is not already buffered; STOP_READER_OUT: a JSON file
// for the results). `npm test` never runs it (e2e/vitest.config.mts takes *.tool.ts only with E2E_TOOL).
import { afterAll, beforeAll, expect, it } from 'vitest'
import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import { launchEngine, type Engine, type EngineName, type EnginePage } from './lib/engines'
import { inPage, type PageResult } from './lib/direct-reader'
import { longWebm } from '../benchmark/lib/long-webm.mjs'
import { createWebmFinaliser } from '../client/finalise/webm.mjs'
import { createMp4Finaliser, readBoxHeader, repairRepeatedMoof } from '../client/finalise/mp4.mjs'

const FIXTURES = path.resolve(__dirname, '../__test__/fixtures/audio')
const SECONDS = 180
const ENGINES = (process.env.STOP_READER_ENGINES || 'chromium,firefox,webkit').split(',') as EngineName[]
const PRELOADS = (process.env.STOP_READER_PRELOAD || 'metadata,auto').split(',')
const RATE = Number(process.env.STOP_READER_KBPS || 256) * 1024
const OUT = process.env.STOP_READER_OUT

// --- the files ------------------------------------------------------------------------------------

const concat = (...parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) (out.set(p, at), (at += p.length))
  return out
}
const u32 = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset).getUint32(at)

/** Top-level boxes of `b` from `start`: `[{ type, start, end }]`. */
function topBoxes(b: Uint8Array, start = 0) {
  const out: { type: string; start: number; end: number }[] = []
  for (let at = start; at < b.length;) {
    const h = readBoxHeader(b, at)
    if (!h || h.size === null) throw new Error(`unexpected box at ${at}`)
    out.push({ type: h.type, start: at, end: at + h.size })
    at += h.size
  }
  return out
}

/** The `tfdt` (its value's offset and width) and the `mfhd` sequence number's offset in a moof at `moof`. */
function fragmentFields(b: Uint8Array, moof: { start: number; end: number }) {
  let seqAt = -1
  let tfdt: { at: number; wide: boolean } | null = null
  const walk = (start: number, end: number) => {
    for (let at = start; at < end;) {
      const h = readBoxHeader(b, at, end)
      if (!h || h.size === null) throw new Error('bad box in moof')
      if (h.type === 'mfhd') seqAt = at + 12
      if (h.type === 'traf') walk(at + 8, at + h.size)
      if (h.type === 'tfdt') tfdt = { at: at + 12, wide: b[at + 8] === 1 }
      at += h.size
    }
  }
  walk(moof.start + 8, moof.end)
  if (!tfdt || seqAt < 0) throw new Error('moof without tfdt or mfhd')
  return { seqAt, tfdt: tfdt as { at: number; wide: boolean } }
}

/**
 * A fragmented MP4 recording of at least `seconds`: the fixture's header, then its fragments but the
 * last (short) one repeated, each copy's `tfdt` shifted by the span they cover and its `mfhd`
 * sequence number counting on. The samples are the fixture's own bytes.
 */
function longMp4(raw: Uint8Array, seconds: number, fixtureSeconds: number) {
  const top = topBoxes(raw)
  const first = top.findIndex((x) => x.type === 'moof')
  const head = raw.subarray(0, top[first].start)
  const frags: { start: number; end: number }[] = []
  for (let i = first; i < top.length; i++) {
    if (top[i].type !== 'moof') continue
    let j = i + 1
    while (j < top.length && top[j].type !== 'moof') j++
    // A `free` left by repairRepeatedMoof before the next moof belongs to no fragment we copy.
    const end = top[j - 1].type === 'free' ? top[j - 1].start : top[j - 1].end
    frags.push({ start: top[i].start, end })
  }
  const last = frags.pop()!
  const time = (f: { start: number; end: number }) => {
    const { tfdt } = fragmentFields(raw, { start: f.start, end: raw.length })
    return tfdt.wide ? Number(new DataView(raw.buffer, raw.byteOffset).getBigUint64(tfdt.at)) : u32(raw, tfdt.at)
  }
  const t0 = time(frags[0])
  const span = time(last) - t0
  const copies = Math.ceil(seconds / fixtureSeconds)
  const body: Uint8Array[] = []
  let seq = 1
  for (let k = 0; k < copies; k++)
    for (const f of frags) {
      const c = raw.slice(f.start, f.end)
      const moofEnd = u32(c, 0)
      const { seqAt, tfdt } = fragmentFields(c, { start: 0, end: moofEnd })
      const v = new DataView(c.buffer)
      v.setUint32(seqAt, seq++)
      const t = time(f) + k * span
      if (tfdt.wide) v.setBigUint64(tfdt.at, BigInt(t))
      else v.setUint32(tfdt.at, t)
      body.push(c)
    }
  return concat(head, ...body)
}

/** What each design stores for `raw`: the final file, the provisional one (+ tail), the raw one. */
function forms(raw: Uint8Array, create: () => any) {
  const f = create()
  const out: Uint8Array = f.push(raw)
  const H = f.headerLength as number
  const done = f.finish()
  if (done.header.length !== H) throw new Error('the final header region changed length')
  return {
    durationMs: done.durationMs as number,
    headerLength: H,
    files: {
      final: concat(done.header, out.subarray(H), done.tail),
      provisional: concat(out, done.tail),
      raw,
    } as Record<string, Uint8Array>,
  }
}

type Recording = ReturnType<typeof forms> & { name: string; type: string; ext: string }
const recordings: Recording[] = []

// --- the static server ----------------------------------------------------------------------------

type Sent = { t: number; bytes: number }
type Req = { range: string; t: number; sent: Sent[] }
const requests = new Map<string, Req[]>()
const files = new Map<string, { bytes: Uint8Array; type: string }>()
let server: http.Server
let origin = ''

/** One `bytes=a-b` range (a suffix or an open end too), or null for none or several. */
function range(h: string | undefined, size: number): [number, number] | 'bad' | null {
  if (!h) return null
  const m = /^bytes=(\d*)-(\d*)$/.exec(h.trim())
  if (!m || (m[1] === '' && m[2] === '')) return null
  let a: number
  let b: number
  if (m[1] === '') ((a = Math.max(0, size - Number(m[2]))), (b = size - 1))
  else ((a = Number(m[1])), (b = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1)))
  return a > b || a >= size ? 'bad' : [a, b]
}

function serve(req: http.IncomingMessage, res: http.ServerResponse) {
  const url = new URL(req.url!, 'http://x')
  if (url.pathname === '/')
    return void res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>reader</title>')
  const f = files.get(url.pathname)
  if (!f) return void res.writeHead(404).end()
  const size = f.bytes.length
  const r = range(req.headers.range, size)
  const common = {
    'accept-ranges': 'bytes',
    'content-type': f.type,
    etag: `"${url.pathname}"`,
    'cache-control': 'no-store',
  }
  if (r === 'bad') return void res.writeHead(416, { ...common, 'content-range': `bytes */${size}` }).end()
  const [a, b] = r ?? [0, size - 1]
  res.writeHead(r ? 206 : 200, {
    ...common,
    'content-length': String(b - a + 1),
    ...(r ? { 'content-range': `bytes ${a}-${b}/${size}` } : {}),
  })
  if (req.method === 'HEAD') return void res.end()
  const log: Req = { range: r ? `${a}-${b}` : 'whole', t: Date.now(), sent: [] }
  const key = url.searchParams.get('case') ?? ''
  requests.set(key, [...(requests.get(key) ?? []), log])
  // Paced at RATE per response, 16 KiB at a time; a closed request stops it.
  const step = 16 * 1024
  let at = a
  let closed = false
  res.on('close', () => (closed = true))
  const t0 = Date.now()
  const next = () => {
    if (closed) return
    if (at > b) return void res.end()
    const n = Math.min(step, b + 1 - at)
    const ok = res.write(f.bytes.subarray(at, at + n))
    at += n
    log.sent.push({ t: Date.now(), bytes: n })
    const due = t0 + ((at - a) / RATE) * 1000 - Date.now()
    const go = () => setTimeout(next, Math.max(0, due))
    if (ok) go()
    else res.once('drain', go)
  }
  next()
}

beforeAll(async () => {
  const webm = longWebm(SECONDS / 60)
  const webmRec = forms(webm.bytes, createWebmFinaliser)
  recordings.push({ name: 'chromium-webm', type: 'audio/webm', ext: 'webm', ...webmRec })
  const cm = new Uint8Array(fs.readFileSync(path.join(FIXTURES, 'chromium-20s-timeslice.m4a')))
  recordings.push({
    name: 'chromium-mp4',
    type: 'audio/mp4',
    ext: 'm4a',
    ...forms(longMp4(cm, SECONDS, 19), createMp4Finaliser),
  })
  const wk = repairRepeatedMoof(new Uint8Array(fs.readFileSync(path.join(FIXTURES, 'webkit-20s.m4a'))))
  recordings.push({
    name: 'webkit-mp4',
    type: 'audio/mp4',
    ext: 'm4a',
    ...forms(longMp4(wk, SECONDS, 19), createMp4Finaliser),
  })
  for (const r of recordings)
    for (const [form, bytes] of Object.entries(r.files))
      files.set(`/${r.name}.${form}.${r.ext}`, { bytes, type: r.type })
  server = http.createServer(serve)
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  origin = `http://127.0.0.1:${(server.address() as { port: number }).port}`
  for (const r of recordings)
    console.log(
      `${r.name}: ${(r.durationMs / 1000).toFixed(2)} s, header region ${r.headerLength} B, ` +
        Object.entries(r.files)
          .map(([k, v]) => `${k} ${v.length} B`)
          .join(', '),
    )
})

afterAll(async () => {
  server?.closeAllConnections()
  await new Promise((r) => server?.close(r))
})

// In the page: inPage (e2e/lib/direct-reader.ts).

// --- the runs -------------------------------------------------------------------------------------

type Row = { engine: string; version: string; recording: string; form: string; preload: string; target: number } & Omit<
  PageResult,
  'trace'
> & {
    playsOn: boolean
    bytesBeforeSeek: number
    bytesTotal: number
    fileBytes: number
    ranges: string[]
    trace: string[]
  }
const rows: Row[] = []

/** `p`, or `fallback` after `ms` (a hung WebDriver call is abandoned, not awaited). */
const within = <T>(p: Promise<T>, ms: number, fallback: T) =>
  Promise.race([p, new Promise<T>((r) => setTimeout(() => r(fallback), ms))])

const HUNG = Symbol('hung')

for (const name of ENGINES)
  it(`direct reader in ${name}`, { timeout: 1_800_000 }, async () => {
    let engine: Engine | null = null
    // A fresh page per case; a fresh browser when the last one stopped answering.
    const open = async () => {
      engine ??= await launchEngine(name)
      const page: EnginePage = await engine.newPage()
      await page.goto(`${origin}/`)
      return page
    }
    const drop = async () => {
      await within(engine?.close() ?? Promise.resolve(), 15_000, undefined)
      engine = null
    }
    try {
      for (const r of recordings)
        for (const form of Object.keys(r.files))
          for (const preload of PRELOADS) {
            const id = `${name}-${r.name}-${form}-${preload}-${Date.now()}`
            const target = Math.round(r.durationMs * 0.8) / 1000
            const src = `${origin}/${r.name}.${form}.${r.ext}?case=${encodeURIComponent(id)}`
            const pg = await open()
            const got = await within<PageResult | typeof HUNG>(
              pg.evaluate(inPage, [src, preload, target] as [string, string, number]),
              90_000,
              HUNG,
            )
            const version = engine!.version
            if (got === HUNG) await drop()
            else await within(pg.close(), 15_000, undefined)
            const p: PageResult =
              got === HUNG
                ? {
                    loaded: false,
                    metaMs: NaN,
                    duration: null,
                    seeked: false,
                    seekMs: NaN,
                    seekedAt: 0,
                    at: NaN,
                    now: NaN,
                    ended: false,
                    durationAfter: null,
                    error: 'the browser stopped answering (90 s)',
                    trace: [],
                  }
                : got
            // The player may keep a connection open: give the log a moment, then read it.
            const reqs = requests.get(id) ?? []
            const until = p.seeked ? p.seekedAt : Infinity
            const upTo = (cut: number) =>
              reqs.reduce((n, q) => n + q.sent.filter((s) => s.t <= cut).reduce((m, s) => m + s.bytes, 0), 0)
            const row: Row = {
              engine: name,
              version,
              recording: r.name,
              form,
              preload,
              target,
              ...p,
              playsOn: p.seeked && p.at >= target - 0.5 && p.now >= p.at + 0.5 && p.now <= p.at + 3 && !p.ended,
              bytesBeforeSeek: upTo(until),
              bytesTotal: upTo(Infinity),
              fileBytes: r.files[form].length,
              ranges: reqs.filter((q) => q.t <= until).map((q) => q.range),
            }
            rows.push(row)
            console.log(
              `${name} ${r.name} ${form} preload=${preload}: duration ${p.duration} (after ${Math.round(p.metaMs)} ms), ` +
                `seek to ${target}: seeked=${p.seeked} at=${p.at.toFixed(2)} now=${p.now.toFixed(2)} playsOn=${row.playsOn} ` +
                `in ${Math.round(p.seekMs)} ms, bytes before seek ${row.bytesBeforeSeek} of ${row.fileBytes}, ranges ${row.ranges.join(' ')}` +
                (p.error ? `, error ${p.error}` : ''),
            )
          }
    } finally {
      await drop()
    }
    if (OUT) fs.writeFileSync(OUT, JSON.stringify(rows, null, 1))
    console.log(markdown(rows.filter((r) => r.engine === name)))
    expect(rows.filter((r) => r.engine === name).length).toBe(recordings.length * 3 * PRELOADS.length)
  })

/** The rows as docs/stop-to-transcribing.md shows them. */
function markdown(rows: Row[]) {
  const out = [
    `${rows[0]?.version} (${RATE / 1024} KiB/s a response)`,
    '',
    '| recording | stored form | preload | `duration` at `loadedmetadata` (after) | seek to 80 %: reached · plays on (took) | bytes before the seek completed | requests before it |',
    '|---|---|---|---|---|---|---|',
  ]
  for (const r of rows) {
    const d = r.loaded
      ? `${r.duration === null ? '∞' : r.duration.toFixed(2)} s (${Math.round(r.metaMs)} ms)`
      : `none${r.error ? ` (${r.error})` : ''}`
    const reached = r.seeked && r.at >= r.target - 0.5
    const plays = r.playsOn ? 'yes' : `no (then ${r.now.toFixed(1)}${r.ended ? ', ended' : ''})`
    const seek = !r.loaded
      ? '—'
      : r.seeked
        ? `${reached ? 'yes' : `no (at ${r.at.toFixed(1)})`} · ${plays} (${Math.round(r.seekMs)} ms)`
        : `no \`seeked\` in 10 s · ${plays}`
    const mb = (n: number) => (n / 1e6).toFixed(2)
    const bytes = r.seeked
      ? `${mb(r.bytesBeforeSeek)} MB (${Math.round((100 * r.bytesBeforeSeek) / r.fileBytes)} %)`
      : `(${mb(r.bytesBeforeSeek)} MB in all)`
    out.push(
      `| ${r.recording} | ${r.form} | ${r.preload} | ${d} | ${seek} | ${bytes} | ${r.ranges.join(', ') || '—'} |`,
    )
  }
  return out.join('\n')
}
