// Small helpers shared by the loopback peers.
import http from 'node:http'

/** Start `handler` on 127.0.0.1 (port 0 = any), tracking sockets so `close()` is immediate. */
export async function listen(handler, port = 0) {
  const server = http.createServer(handler)
  const sockets = new Set()
  let connections = 0
  server.on('connection', (s) => {
    connections++
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve))
  const address = server.address()
  return {
    server,
    url: `http://127.0.0.1:${address.port}`,
    port: address.port,
    get connections() {
      return connections
    },
    get openSockets() {
      return sockets.size
    },
    async close() {
      for (const s of sockets) s.destroy()
      await new Promise((resolve) => server.close(() => resolve()))
    },
  }
}

export async function readBody(req) {
  const chunks = []
  for await (const c of req) chunks.push(c)
  return Buffer.concat(chunks)
}

export function json(res, status, value, headers = {}) {
  const body = JSON.stringify(value)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers })
  res.end(body)
}

/**
 * Failure injection, one vocabulary for every emulator: set `peer.state.fail` to
 * `{ status, kind?, sticky?, retryAfter? }` and the next request of that kind (every one, while
 * `sticky`) is answered with `status` in the service's own error format, plus `Retry-After` when
 * given. Kinds: Clerk `jwks` | `tokens`, Convex `query` | `mutation`, Blob `put` | `mpu-create` | `mpu-part` | `mpu-complete` | `head` (named only); no kind matches
 * all. Emulator-specific extras: Convex `{ functionError }` (the function throws), Blob
 * `state.resetAfterBytes` (the connection dies mid-body). `state.latencyMs` delays every answer.
 * Returns the failure to answer with, or null.
 */
export function takeFailure(state, kind) {
  const fail = state.fail
  if (!fail || !fail.status || (fail.kind && fail.kind !== kind)) return null
  if (!fail.sticky) state.fail = null
  return fail
}

/** `Retry-After` for an injected failure that names one. */
export const retryAfter = (fail) => (fail.retryAfter ? { 'retry-after': String(fail.retryAfter) } : {})
