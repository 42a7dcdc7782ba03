// 3. Many Range streams at once: `streams` concurrent requests for `rangeBytes` each of the medium
// file (each at its own offset, as many listeners each playing from their own position). The goal
// is memory: the peak RSS of the process doing the work (VmHWM, reset before the burst), whole and
// above idle; errors, p99 first byte and the burst's wall time say what it paid for it.
import { MiB } from '../lib/common.mjs'
import { request } from '../lib/http.mjs'
import { peakRssMiB, resetPeak, rssMiB } from '../lib/proc.mjs'
import { pct } from '../lib/stats.mjs'

export default async function concurrency({ cfg, services: s, perVariant }) {
  const span = s.med.size - cfg.rangeBytes
  await perVariant('concurrency', async (v) => {
    const pid = s.pidOf(v)
    const idle = rssMiB(pid)
    resetPeak(pid)
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
    const errors = all.filter((r) => r.status !== 206 || r.bytes !== cfg.rangeBytes).length
    const peak = peakRssMiB(pid)
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
    }
  })
}
