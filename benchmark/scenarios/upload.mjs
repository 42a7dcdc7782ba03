// 4. Upload the big size as one streamed body: through each proxy (a POST to a recording session)
// and straight to the Blob API (a PUT). A PCM WAV header, then constant samples.
import { MiB, log } from '../lib/common.mjs'
import { request } from '../lib/http.mjs'
import { peakRssMiB, resetPeak, rssMiB } from '../lib/proc.mjs'
import { benchWav } from '../lib/wav.mjs'

export default async function upload({ cfg, services: s, perVariant }) {
  await perVariant('upload', async (v) => {
    const pid = s.pidOf(v)
    const idle = rssMiB(pid)
    resetPeak(pid)
    const total = cfg.uploadBytes
    const { header, durationMs } = benchWav(total)
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
    const headers = {
      'content-length': String(total),
      'x-duration-ms': String(durationMs),
      'x-content-type': 'audio/wav',
    }
    if (v === 'direct') {
      url = `${s.svc.blob.apiUrl}/?pathname=${encodeURIComponent(`direct/${Date.now()}.wav`)}`
      Object.assign(headers, {
        authorization: `Bearer ${s.svc.blob.token}`,
        'x-vercel-blob-access': 'public',
        'x-api-version': '12',
        'x-add-random-suffix': '1',
      })
    } else {
      url = s.audioUrl(v, await s.recordingSession())
      Object.assign(headers, s.auth)
    }
    const res = await request(url, { method: v === 'direct' ? 'PUT' : 'POST', headers, body })
    const ok = v === 'direct' ? res.status === 200 : res.status === 201
    if (!ok) log(`upload ${v}: ${res.status} ${res.text}`)
    return { ok, mbps: total / MiB / (res.ms / 1000), peakAboveIdle: v === 'direct' ? null : peakRssMiB(pid) - idle }
  })
}
