// One benchmark variant behind a Next-style Node http server, in its own process so its CPU and
// memory are measured alone. Prints one JSON line { url } when listening.
//   node benchmark/proxy-process.mjs session-audio|pure-js
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
const floor = Buffer.alloc(16384, 7)
const special = new Map([
  ['__floor', () => new Response(floor, { status: 206 })],
  ['__mem', () => Response.json(process.memoryUsage())],
])
const withFloor = Object.fromEntries(
  Object.entries(handlers)
    .filter(([k]) => ['GET', 'POST', 'HEAD'].includes(k))
    .map(([method, h]) => [
      method,
      async (request, context) => {
        const answer = special.get((await context.params).sessionId)
        return answer ? answer() : h(request, context)
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
