// 2. Seek bursts: sequential 16 KiB Range reads of the medium file, with realistic service latency
// (`seek-latency`) and with none (`seek-zero`), next to the same number of requests to the
// variant's harness floor (benchmark/proxy-process.mjs answers `__floor` from memory) and, in
// session-audio's process, to a relay that checks nothing (`__relay`).
import { LATENCY } from '../lib/common.mjs'
import { request } from '../lib/http.mjs'
import { pct } from '../lib/stats.mjs'

export default async function seek({ cfg, services: s, perVariant }) {
  for (const [label, latency] of [
    ['seek-latency', LATENCY],
    ['seek-zero', {}],
  ]) {
    await s.setLatency(latency)
    await perVariant(label, async (v) => {
      const before = await s.counts()
      const times = []
      let errors = 0
      for (let i = 0; i < cfg.seeks; i++) {
        const start = Math.floor(Math.random() * (s.med.size - 65536))
        const res = await request(s.audioUrl(v, s.medSession, s.med), {
          headers: { ...s.auth, range: `bytes=${start}-${start + 16383}` },
        })
        if (res.status !== 206 || res.bytes !== 16384) errors++
        times.push(res.ms)
      }
      const after = await s.counts()
      // The same seeks through a relay in session-audio's process that checks nothing
      // (benchmark/proxy-process.mjs `__relay`): the least any proxy in this harness costs.
      const relay = []
      if (v === 'session-audio') {
        const via = `${s.audioUrl(v, '__relay', s.med)}?u=${encodeURIComponent(s.med.url)}`
        for (let i = 0; i < cfg.seeks; i++) {
          const start = Math.floor(Math.random() * (s.med.size - 65536))
          const res = await request(via, { headers: { range: `bytes=${start}-${start + 16383}` } })
          if (res.status !== 206 || res.bytes !== 16384) errors++
          relay.push(res.ms)
        }
      }
      // The same number of requests to the harness floor of this variant's process.
      const floor = []
      if (v !== 'direct') {
        for (let i = 0; i < cfg.seeks; i++)
          floor.push((await request(s.audioUrl(v, '__floor', s.med), { headers: s.auth })).ms)
      }
      return {
        ok: errors === 0,
        errors,
        p50: pct(times, 50),
        p99: pct(times, 99),
        floorP50: v === 'direct' ? null : pct(floor, 50),
        relayP50: relay.length ? pct(relay, 50) : null,
        clerk: after.clerk - before.clerk,
        convex: after.convex - before.convex,
      }
    })
  }
  await s.setLatency({})
}
