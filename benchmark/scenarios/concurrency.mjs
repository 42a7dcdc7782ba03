// 3. Many Range streams at once: `streams` concurrent requests for `rangeBytes` each of the medium
// file (each at its own offset, as many listeners each playing from their own position). The goal
// is memory: the peak RSS of the process doing the work (VmHWM, reset before the burst), whole and
// above idle; errors, p99 first byte and the burst's wall time say what it paid for it. Beside the
// RSS, memory as V8 sees it in the proxy (`process.memoryUsage()` from its `__mem` route, sampled
// during the burst): `external` and `arrayBuffers` are what V8 counts when it decides to collect,
// so RSS far above them is memory V8 does not know it holds. After the burst, the RSS once the
// process has been idle for a second: what it keeps.
import { MiB } from '../lib/common.mjs'
import { getJson, request } from '../lib/http.mjs'
import { peakRssMiB, resetPeak, rssMiB } from '../lib/proc.mjs'
import { pct } from '../lib/stats.mjs'

/** Sample the proxy's `process.memoryUsage()` until `stop()`; the peaks of external and arrayBuffers (MiB). */
function sampleV8(url) {
  const peak = { external: 0, arrayBuffers: 0 }
  let running = true
  const done = (async () => {
    while (running) {
      const m = await getJson(url).catch(() => null)
      if (m) {
        peak.external = Math.max(peak.external, m.external / MiB)
        peak.arrayBuffers = Math.max(peak.arrayBuffers, m.arrayBuffers / MiB)
      }
      await new Promise((r) => setTimeout(r, 20))
    }
  })()
  return async () => {
    running = false
    await done
    return peak
  }
}

export default async function concurrency({ cfg, services: s, perVariant }) {
  const span = s.med.size - cfg.rangeBytes
  await perVariant('concurrency', async (v) => {
    const pid = s.pidOf(v)
    const memUrl = v === 'direct' ? null : s.audioUrl(v, '__mem', s.med)
    const idle = rssMiB(pid)
    resetPeak(pid)
    const stopSampling = memUrl ? sampleV8(memUrl) : async () => ({ external: null, arrayBuffers: null })
    const t0 = performance.now()
    const all = await Promise.all(
      Array.from({ length: cfg.streams }, (_, i) => {
        // Spread over the file, on 4 KiB boundaries, deterministic (every variant reads the same).
        const start = Math.floor((span * i) / cfg.streams / 4096) * 4096
        return request(s.audioUrl(v, s.medSession, s.med), {
          headers: { ...s.auth, range: `bytes=${start}-${start + cfg.rangeBytes - 1}` },
        })
      }),
    )
    const seconds = (performance.now() - t0) / 1000
    const v8 = await stopSampling()
    const errors = all.filter((r) => r.status !== 206 || r.bytes !== cfg.rangeBytes).length
    const peak = peakRssMiB(pid)
    await new Promise((r) => setTimeout(r, 1000))
    return {
      ok: errors === 0,
      errors,
      p99FirstByte: pct(
        all.map((r) => r.firstByteMs),
        99,
      ),
      mbps: (cfg.streams * cfg.rangeBytes) / MiB / seconds,
      idleRss: idle,
      peakRss: peak,
      peakAboveIdle: peak - idle,
      peakExternal: v8.external,
      peakArrayBuffers: v8.arrayBuffers,
      settledRss: rssMiB(pid),
    }
  })
}
