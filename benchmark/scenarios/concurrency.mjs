// 3. Many streams of the medium file at once: errors, p99 first byte, peak RSS above idle.
import { request } from '../lib/http.mjs'
import { peakRssMiB, resetPeak, rssMiB } from '../lib/proc.mjs'
import { pct } from '../lib/stats.mjs'

export default async function concurrency({ cfg, services: s, perVariant }) {
  await perVariant('concurrency', async (v) => {
    const pid = s.pidOf(v)
    const idle = rssMiB(pid)
    resetPeak(pid)
    const all = await Promise.all(
      Array.from({ length: cfg.streams }, () => request(s.audioUrl(v, s.medSession, s.med), { headers: s.auth })),
    )
    const errors = all.filter((r) => r.status !== 200 || r.bytes !== s.med.size).length
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
}
