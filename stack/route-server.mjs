// What Next.js does with an App Router route handler, reduced to its core: a Node `http` server
// that turns each IncomingMessage into a Web `Request`, calls the handler with `{ params }`, and
// writes the returned `Response` back, cancelling the body stream when the client goes away.
import { Readable } from 'node:stream'
import { listen } from './http-util.mjs'

/** Wait for `drain` (or `close`), leaving no listener behind. */
function drained(res) {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done)
      res.off('close', done)
      resolve()
    }
    res.on('drain', done)
    res.on('close', done)
  })
}

/** Vercel's limit on a function's request body (docs/protocols.md §D.3). */
export const VERCEL_MAX_BODY_BYTES = 4.5 * 1000 * 1000

/** Vercel's refusal of a body over the limit, before the function runs. */
export function payloadTooLarge(res) {
  res.writeHead(413, {
    'content-type': 'text/plain; charset=utf-8',
    'x-vercel-error': 'FUNCTION_PAYLOAD_TOO_LARGE',
    connection: 'close',
  })
  res.end('Request Entity Too Large\n\nFUNCTION_PAYLOAD_TOO_LARGE\n')
}

/**
 * `routes`: { pattern: RegExp with a `sessionId` group, handlers: { GET, POST, HEAD } }.
 * `maxBodyBytes` (e.g. VERCEL_MAX_BODY_BYTES): behave as Vercel does with bigger bodies: it reads
 * the body before the function runs and answers 413 FUNCTION_PAYLOAD_TOO_LARGE when it is over.
 * `requestHeaders`: a function returning headers the platform adds to every request it hands the
 * function, as Vercel adds `x-vercel-oidc-token` (read at each request, so a test can rotate it).
 * `fallback(req, res)`: serves any other path (a test page, say) instead of a 404.
 * `nextFraming`: drop `Content-Length` (and `Content-Encoding`, `Transfer-Encoding`) from the
 * handler's Response as Next 16.4's `sendResponse` does (FORBIDDEN_HEADERS in
 * next/dist/server/send-response.js), so a body goes out chunked with no length, as from a real app.
 */
export async function startRouteServer({
  pattern = /^\/api\/listening-sessions\/(?<sessionId>[^/]+)\/audio$/,
  handlers,
  port = 0,
  maxBodyBytes = null,
  requestHeaders = null,
  fallback = null,
  nextFraming = false,
}) {
  const log = [] // { method, path, status }
  const peer = await listen(async (req, res) => {
    const url = new URL(req.url, `http://${req.headers.host}`)
    const m = url.pathname.match(pattern)
    const handler = m && handlers[req.method]
    if (!m && fallback) return fallback(req, res)
    if (!handler) {
      res.writeHead(m ? 405 : 404)
      return res.end()
    }
    const controller = new AbortController()
    res.on('close', () => controller.abort())
    const headers = new Headers()
    for (const [k, v] of Object.entries(req.headers)) headers.set(k, Array.isArray(v) ? v.join(', ') : v)
    for (const [k, v] of Object.entries(requestHeaders?.() ?? {})) headers.set(k, v)
    const hasBody = req.method !== 'GET' && req.method !== 'HEAD'
    let body = hasBody ? Readable.toWeb(req) : undefined
    if (hasBody && maxBodyBytes !== null) {
      if (Number(req.headers['content-length'] || 0) > maxBodyBytes) {
        log.push({ method: req.method, path: url.pathname, status: 413 })
        return payloadTooLarge(res)
      }
      const chunks = []
      let size = 0
      for await (const chunk of req) {
        size += chunk.length
        if (size > maxBodyBytes) {
          log.push({ method: req.method, path: url.pathname, status: 413 })
          return payloadTooLarge(res)
        }
        chunks.push(chunk)
      }
      body = Buffer.concat(chunks)
    }
    const request = new Request(url, {
      method: req.method,
      headers,
      body,
      duplex: hasBody ? 'half' : undefined,
      signal: controller.signal,
    })
    let response
    try {
      response = await handler(request, { params: Promise.resolve({ ...m.groups }) })
    } catch (err) {
      res.writeHead(500, { 'content-type': 'text/plain' })
      return res.end(String(err))
    }
    log.push({ method: req.method, path: url.pathname, status: response.status, range: req.headers.range })
    const dropped = nextFraming ? ['content-length', 'content-encoding', 'transfer-encoding'] : []
    res.writeHead(response.status, [...response.headers].filter(([k]) => !dropped.includes(k)).flat())
    if (!response.body) return res.end()
    // As Next's pipeToNodeResponse: read the web stream and write with backpressure; when the
    // client goes away, cancel the stream (which reaches the handler's cancel).
    const reader = response.body.getReader()
    res.on('close', () => {
      if (!res.writableFinished) reader.cancel().catch(() => {})
    })
    try {
      for (;;) {
        const { done, value } = await reader.read()
        if (done) break
        if (!res.write(value)) await drained(res)
        if (res.destroyed) return
      }
      res.end()
    } catch {
      res.destroy()
    }
  }, port)
  return { ...peer, log, close: () => peer.close() }
}
