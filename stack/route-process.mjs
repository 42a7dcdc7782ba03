// The route in a process of its own, as Next runs it: a route server (route-server.mjs) over one set
// of handlers per configuration, so a test can watch the process from outside (its stderr, its RSS,
// whether it is still alive). Prints one JSON line `{ url }` on stdout when listening; exits when
// stdin closes or on SIGTERM.
//   SESSION_AUDIO_ROUTES='{"<name>": <options>, …}' node stack/route-process.mjs [--fill-stderr]
// Routes: `/<name>/api/listening-sessions/<sessionId>/audio` (GET, HEAD, POST) with that
// configuration's handlers. `GET /__stats`: `{ rss, records }`, the `onRequest` records so far.
// `--fill-stderr`: first write to stderr (fd 2, which Node makes non-blocking) until it takes no
// more, as a pipe nobody reads ends up.
import fs from 'node:fs'
import { startRouteServer } from './route-server.mjs'
import { json } from './http-util.mjs'
import { createAudioHandlers } from '../index.js'

const records = []
const routes = {}
for (const [name, options] of Object.entries(JSON.parse(process.env.SESSION_AUDIO_ROUTES || '{}'))) {
  routes[name] = createAudioHandlers({ ...options, onRequest: (r) => records.push(r) })
}

if (process.argv.includes('--fill-stderr')) {
  process.stderr.write('') // Node sets fd 2 non-blocking when it opens process.stderr
  const chunk = Buffer.alloc(64 * 1024, 'x')
  for (let written = 0; written < 64 * 1024 * 1024;) {
    try {
      written += fs.writeSync(2, chunk)
    } catch (err) {
      if (err.code === 'EAGAIN') break
      throw err
    }
  }
}

const by = (method) => async (request, context) => {
  const params = await context.params
  return routes[params.route][method](request, { params: Promise.resolve({ sessionId: params.sessionId }) })
}
const server = await startRouteServer({
  pattern: /^\/(?<route>[\w-]+)\/api\/listening-sessions\/(?<sessionId>[^/]+)\/audio$/,
  handlers: { GET: by('GET'), HEAD: by('HEAD'), POST: by('POST') },
  fallback: (req, res) =>
    req.url === '/__stats' ? json(res, 200, { rss: process.memoryUsage().rss, records }) : json(res, 404, {}),
})
process.stdout.write(JSON.stringify({ url: server.url }) + '\n')
const stop = async () => {
  await server.close()
  process.exit(0)
}
process.on('SIGTERM', stop)
process.stdin.on('end', stop)
process.stdin.resume()
