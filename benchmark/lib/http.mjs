// The benchmark's HTTP client: one keep-alive agent, timings to the first byte and to the end.
import http from 'node:http'

const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity })

/**
 * Never rejects: `{status, bytes, firstByteMs, ms, text}` (status 0 on a network error). The body
 * is kept only when asked, or when the status says it is an error worth logging. `body` may be a
 * function that writes the request itself (streamed uploads).
 */
export function request(url, { method = 'GET', headers = {}, body, keepBody = false } = {}) {
  return new Promise((resolve) => {
    const t0 = performance.now()
    const req = http.request(url, { method, headers, agent }, (res) => {
      let firstByteMs = null
      let bytes = 0
      const chunks = []
      res.on('data', (c) => {
        if (firstByteMs === null) firstByteMs = performance.now() - t0
        bytes += c.length
        if (keepBody || res.statusCode >= 300) chunks.push(c)
      })
      res.on('end', () =>
        resolve({
          status: res.statusCode,
          bytes,
          firstByteMs: firstByteMs ?? performance.now() - t0,
          ms: performance.now() - t0,
          text: Buffer.concat(chunks).toString(),
        }),
      )
      res.on('error', () => resolve({ status: 0, bytes, ms: performance.now() - t0, firstByteMs: null }))
    })
    req.on('error', (e) => resolve({ status: 0, bytes: 0, ms: performance.now() - t0, error: e.message }))
    if (typeof body === 'function') body(req)
    else req.end(body)
  })
}

/** POST JSON, parse the JSON answer. */
export const post = async (base, p, body) =>
  JSON.parse(
    (await request(`${base}${p}`, { method: 'POST', body: JSON.stringify(body), keepBody: true })).text || '{}',
  )

export async function getJson(url) {
  return new Promise((resolve) =>
    http.get(url, (res) => {
      let b = ''
      res.on('data', (c) => (b += c))
      res.on('end', () => resolve(JSON.parse(b)))
    }),
  )
}
