// The page function that plays a file as a direct reader would, shared by the Stop → transcribing
// probe (e2e/stop-header-reader.tool.ts) and the recorder's three-engine test of the stored blob
// (e2e/engines.e2e.ts): `duration` at `loadedmetadata`, a seek to a target, and whether playback
// goes on from there.

export type PageResult = {
  loaded: boolean
  metaMs: number
  duration: number | null
  seeked: boolean
  seekMs: number
  seekedAt: number
  at: number
  now: number
  ended: boolean
  durationAfter: number | null
  error: string | null
  trace: string[]
}

/**
 * A new muted `<audio preload>` on `src`: at `loadedmetadata` read `duration`, wait 1 s, seek (paused)
 * to `target`, then play until 1 s past it (at most 4 s). Every wait is bounded (WebKit's script
 * timeout is 60 s; the caller gives up after 90 s).
 */
export const inPage = async ([src, preload, target]: [string, string, number]): Promise<PageResult> => {
  const t0 = performance.now()
  const trace: string[] = []
  const a = Object.assign(document.createElement('audio'), { preload, muted: true })
  document.body.append(a)
  const watched = ['loadedmetadata', 'durationchange', 'seeking', 'seeked', 'playing', 'waiting', 'ended', 'error']
  for (const e of watched)
    a.addEventListener(e, () =>
      trace.push(`${Math.round(performance.now() - t0)} ${e} t=${a.currentTime.toFixed(2)} d=${a.duration}`),
    )
  const event = (name: string, ms: number) =>
    new Promise<boolean>((r) => {
      const t = setTimeout(() => r(false), ms)
      a.addEventListener(name, () => (clearTimeout(t), r(true)), { once: true })
    })
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
  const finite = (x: number) => (Number.isFinite(x) ? x : null)
  const meta = event('loadedmetadata', 15_000)
  a.src = src
  const loaded = await meta
  const metaMs = performance.now() - t0
  const duration = finite(a.duration)
  await sleep(1000)
  const seeked = event('seeked', 10_000)
  const s0 = performance.now()
  a.currentTime = target
  const ok = await seeked
  const seekMs = performance.now() - s0
  const seekedAt = Date.now()
  const at = a.currentTime
  await Promise.race([a.play().catch((e) => trace.push(`play: ${e}`)), sleep(4000)])
  const p0 = performance.now()
  while (a.currentTime < at + 1 && !a.ended && performance.now() - p0 < 4000) await sleep(50)
  a.pause()
  const out = {
    loaded,
    metaMs,
    duration,
    seeked: ok,
    seekMs,
    seekedAt,
    at,
    now: a.currentTime,
    ended: a.ended,
    durationAfter: finite(a.duration),
    error: a.error ? `${a.error.code} ${a.error.message}` : null,
    trace: trace.slice(0, 40),
  }
  // Torn down after the answer: WebKit's WebDriver was seen to hang when the teardown ran first.
  setTimeout(() => (a.removeAttribute('src'), a.load(), a.remove()), 0)
  return out
}
