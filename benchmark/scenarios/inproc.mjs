// 6. One process, interleaved, no proxy hop: session-audio's GET (token check, caches, upstream
// request) to a Response plus its body, against fetch() and http.get of the same range straight
// from storage. What the addon itself costs per seek, apart from any HTTP server in front of it.
// Returns `{ok, errors, times: {addon, fetch, http}}`, or null when `--only` leaves it out.
import { createRequire } from 'node:module'
import path from 'node:path'
import { log, repo } from '../lib/common.mjs'
import { request } from '../lib/http.mjs'

export default async function inproc({ cfg, services: s, selected, failures }) {
  if (!selected('inproc')) return null
  log('inproc')
  const { createAudioHandlers } = createRequire(import.meta.url)(path.join(repo, 'index.js'))
  const { svc, med, medSession, auth } = s
  const { GET } = createAudioHandlers({
    convexUrl: svc.convex.url,
    clerkSecretKey: svc.clerk.secretKey,
    clerkApiUrl: svc.clerk.url,
    trustedHosts: [svc.blob.host],
    allowLoopbackUpstream: true,
    logLevel: 'off',
  })
  const ctx = { params: Promise.resolve({ sessionId: medSession }) }
  const times = { addon: [], fetch: [], http: [] }
  let errors = 0
  for (let i = 0; i < cfg.seeks + 20; i++) {
    const at = Math.floor(Math.random() * (med.size - 65536))
    const range = `bytes=${at}-${at + 16383}`
    const t0 = performance.now()
    const a = await GET(
      new Request(`http://app${s.audioUrl('session-audio', medSession, med).replace(/^http:\/\/[^/]+/, '')}`, {
        headers: { ...auth, range },
      }),
      ctx,
    )
    const aBytes = (await a.arrayBuffer()).byteLength
    const t1 = performance.now()
    const f = await fetch(med.url, { headers: { range } })
    const fBytes = (await f.arrayBuffer()).byteLength
    const t2 = performance.now()
    const h = await request(med.url, { headers: { range } })
    const t3 = performance.now()
    if (a.status !== 206 || aBytes !== 16384 || f.status !== 206 || fBytes !== 16384 || h.bytes !== 16384) errors++
    if (i < 20) continue // warm-up: keys, template token, lookup, connections
    times.addon.push(t1 - t0)
    times.fetch.push(t2 - t1)
    times.http.push(t3 - t2)
  }
  if (errors) {
    failures.push(`inproc: ${errors} of ${cfg.seeks + 20} iterations had a failed request`)
    log(`inproc: ${errors} failed requests`)
  }
  return { ok: errors === 0, errors, times }
}
