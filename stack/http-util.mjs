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
