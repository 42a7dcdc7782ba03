// 5. Cold start: a fresh proxy process, to the first served (ranged) response.
import { request } from '../lib/http.mjs'
import { start, stop } from '../lib/proc.mjs'

export default async function coldStart({ services: s, perVariant }) {
  await perVariant('cold-start', async (v) => {
    if (v === 'direct') return { ok: true, loadMs: null, firstMs: null }
    const p = start('proxy-process.mjs', [v], s.proxyEnv)
    const { url, loadMs } = await p.info
    const res = await request(`${url}/api/listening-sessions/${s.medSession}/audio`, {
      headers: { ...s.auth, range: 'bytes=0-1' },
    })
    const firstMs = performance.now() - p.t0
    stop(p)
    return { ok: res.status === 206, loadMs, firstMs }
  })
}
