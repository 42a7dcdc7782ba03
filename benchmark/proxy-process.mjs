// One benchmark variant behind a Next-style Node http server, in its own process so its CPU and
// memory are measured alone. Prints one JSON line { url } when listening.
//   node benchmark/proxy-process.mjs session-audio|pure-js
import http from 'node:http'
import { createRequire } from 'node:module'
import { startRouteServer } from '../stack/route-server.mjs'

const variant = process.argv[2]
const t0 = performance.now()
let handlers
if (variant === 'session-audio') {
  const { createAudioHandlers } = createRequire(import.meta.url)('../index.js')
  handlers = createAudioHandlers()
} else if (variant === 'pure-js') {
  handlers = await import('./pure-js-route.mjs')
} else {
  throw new Error(`unknown variant ${variant}`)
}
const loadMs = performance.now() - t0
// The harness floor: session id `__floor` answers 16 KiB from memory without the handler, so the
// report can show how much of a request's time is the Node http server itself. Session id `__mem`
// answers `process.memoryUsage()`: memory as V8 sees it (external, arrayBuffers) beside the RSS
// the runner reads from /proc.
// Session id `__relay` is the least any proxy in this harness can do for a seek: fetch the blob
// named by `?u=` (the storage on 127.0.0.1) with the client's Range over a keep-alive connection
// and answer its bytes, checking nothing. What session-audio adds over it is what its checks and
// its bridge cost; what it costs over *direct* is what putting any proxy in between costs here.
const floor = Buffer.alloc(16384, 7)
const relayAgent = new http.Agent({ keepAlive: true })
function relay(request) {
  const target = new URL(new URL(request.url).searchParams.get('u') ?? '')
  if (target.hostname !== '127.0.0.1') return new Response('relay: loopback only', { status: 400 })
  const range = request.headers.get('range')
  return new Promise((resolve) => {
    const up = http.get(target, { agent: relayAgent, headers: range ? { range } : {} }, (res) => {
      const chunks = []
      res.on('data', (c) => chunks.push(c))
      res.on('end', () => {
        const headers = {}
        for (const k of ['content-type', 'content-range', 'accept-ranges', 'etag']) {
          if (res.headers[k]) headers[k] = res.headers[k]
        }
        resolve(new Response(Buffer.concat(chunks), { status: res.statusCode, headers }))
      })
      res.on('error', () => resolve(new Response(null, { status: 502 })))
    })
    up.on('error', () => resolve(new Response(null, { status: 502 })))
  })
}
const special = new Map([
  ['__floor', () => new Response(floor, { status: 206 })],
  ['__mem', () => Response.json(process.memoryUsage())],
  ['__relay', relay],
])
const withFloor = Object.fromEntries(
  Object.entries(handlers)
    .filter(([k]) => ['GET', 'POST', 'HEAD'].includes(k))
    .map(([method, h]) => [
      method,
      async (request, context) => {
        const answer = special.get((await context.params).sessionId)
        return answer ? answer(request) : h(request, context)
      },
    ]),
)
const app = await startRouteServer({ handlers: withFloor })
process.stdout.write(JSON.stringify({ url: app.url, loadMs }) + '\n')
process.on('SIGTERM', async () => {
  await app.close()
  process.exit(0)
})
process.stdin.on('end', () => process.exit(0))
process.stdin.resume()
