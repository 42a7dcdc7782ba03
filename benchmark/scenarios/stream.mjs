// 1. Stream the big file whole: throughput, and CPU per GiB of the process doing the work.
import { MiB } from '../lib/common.mjs'
import { request } from '../lib/http.mjs'
import { procStat } from '../lib/proc.mjs'

export default async function stream({ services: s, perVariant }) {
  await s.setLatency({})
  await perVariant('stream', async (v) => {
    const pid = s.pidOf(v)
    const cpu0 = procStat(pid)
    const res = await request(s.audioUrl(v, s.bigSession, s.big), { headers: s.auth })
    const cpu = procStat(pid) - cpu0
    return {
      ok: res.status === 200 && res.bytes === s.big.size,
      status: res.status,
      bytes: res.bytes,
      mbps: res.bytes / MiB / (res.ms / 1000),
      cpuPerGiB: cpu / (res.bytes / 1024 ** 3),
    }
  })
}
