// 4b. The same size through the client flow: the bytes go from the client straight to Blob with a
// token the route mints; the route only answers two small JSON events. Measured on the route
// process: what it read (all sockets, /proc/<pid>/io rchar), its CPU and peak RSS, and the time.
// session-audio only, next to its streamed POST. Returns `{streamed: [run], client: [run]}`, or
// null when `--only` leaves it out.
import { upload as clientUpload } from '@vercel/blob/client'
import { MiB, log } from '../lib/common.mjs'
import { request } from '../lib/http.mjs'
import { peakRssMiB, procStat, rchar, resetPeak, rssMiB } from '../lib/proc.mjs'
import { benchWav } from '../lib/wav.mjs'

export default async function clientUploadScenario({ cfg, services: s, rounds, selected, failures }) {
  if (!selected('client-upload')) return null
  log('client-upload')
  process.env.VERCEL_BLOB_API_URL = s.svc.blob.apiUrl
  const total = cfg.uploadBytes
  const { header, durationMs } = benchWav(total)
  const wav = Buffer.alloc(total, 1)
  header.copy(wav)
  const route = s.proxies['session-audio']
  const pid = route.child.pid
  const measure = async (how) => {
    const idle = rssMiB(pid)
    resetPeak(pid)
    const [cpu0, read0, t0] = [procStat(pid), rchar(pid), performance.now()]
    // `how` answers true, or what went wrong (the status and body of the answer that refused).
    const outcome = await how(await s.recordingSession())
    return {
      ok: outcome === true,
      ...(outcome === true ? {} : { refused: outcome }),
      readMiB: (rchar(pid) - read0) / MiB,
      cpu: procStat(pid) - cpu0,
      peakAboveIdle: peakRssMiB(pid) - idle,
      seconds: (performance.now() - t0) / 1000,
    }
  }
  const streamed = async (id) => {
    const headers = {
      ...s.auth,
      'content-length': String(total),
      'x-duration-ms': String(durationMs),
      'x-content-type': 'audio/wav',
    }
    const res = await request(`${route.url}/api/listening-sessions/${id}/audio`, { method: 'POST', headers, body: wav })
    return res.status === 201 || `${res.status} ${res.text ?? res.error ?? ''}`.slice(0, 300)
  }
  const direct = async (id) => {
    const routeUrl = `${route.url}/api/listening-sessions/${id}/audio`
    const stored = await clientUpload(`listening-sessions/${id}/bench.wav`, new Blob([wav], { type: 'audio/wav' }), {
      access: 'public',
      handleUploadUrl: routeUrl,
      headers: s.auth,
      clientPayload: JSON.stringify({ durationMs, contentType: 'audio/wav' }),
      contentType: 'audio/wav',
      multipart: true,
    })
    const done = await request(routeUrl, {
      method: 'POST',
      headers: { ...s.auth, 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'session-audio.complete-upload', payload: { url: stored.url, durationMs } }),
    })
    return done.status === 201 || `${done.status} ${done.text ?? done.error ?? ''}`.slice(0, 300)
  }
  const clientFlow = { streamed: [], client: [] }
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
  return clientFlow
}
