// Run the example Next.js app (`next start`, after scripts/prepare-example.sh built it) against a
// local stack's environment. Collects the server's stderr lines: session-audio logs one JSON line
// per request there, which the browser tests read.
//
// In front of it, a small proxy that treats request bodies as Vercel does (by default): over 4.5 MB
// a function never sees them (413 FUNCTION_PAYLOAD_TOO_LARGE). So the demo shows the real
// constraint, and long recordings go through the direct-to-Blob client flow.
import { spawn } from 'node:child_process'
import http from 'node:http'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { listen } from './http-util.mjs'
import { payloadTooLarge, VERCEL_MAX_BODY_BYTES } from './route-server.mjs'

// The other place stack/ reaches into examples/ (see convex.mjs): it serves the example app. The
// app never imports stack/; it reads the stack's environment, as it would a real deployment's.
const appDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'examples', 'nextjs')

/** Forward to `next start` on `target`, refusing bodies over `maxBodyBytes` as Vercel does. */
async function bodyCapProxy({ port, host, target, maxBodyBytes }) {
  const forward = (req, res, body) => {
    const upstream = http.request(
      // `localhost`, as Next listens: its own server proxies to itself under that name.
      { host: 'localhost', port: target, method: req.method, path: req.url, headers: req.headers },
      (r) => {
        res.writeHead(r.statusCode, r.rawHeaders)
        r.pipe(res)
      },
    )
    upstream.on('error', () => res.destroy())
    res.on('close', () => upstream.destroy())
    if (body) upstream.end(body)
    else req.pipe(upstream)
  }
  const server = http.createServer(async (req, res) => {
    const declared = req.headers['content-length']
    if (declared !== undefined) {
      if (Number(declared) > maxBodyBytes) return payloadTooLarge(res)
      return forward(req, res)
    }
    if (req.method === 'GET' || req.method === 'HEAD') return forward(req, res)
    // A body of unknown length: read it first, as Vercel does, refusing it past the limit.
    const chunks = []
    let size = 0
    for await (const chunk of req) {
      size += chunk.length
      if (size > maxBodyBytes) return payloadTooLarge(res)
      chunks.push(chunk)
    }
    forward(req, res, Buffer.concat(chunks))
  })
  const sockets = new Set()
  server.on('connection', (s) => (sockets.add(s), s.on('close', () => sockets.delete(s))))
  await new Promise((resolve, reject) => server.once('error', reject).listen(port, host, resolve))
  return {
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy()
        server.close(() => resolve())
      }),
  }
}

/** A loopback port free now, for a server that must be told its port. */
async function freePort() {
  const probe = await listen(() => {}, 0)
  const { port } = probe
  await probe.close()
  return port
}

export async function startExampleApp({
  env,
  // Another built Next.js app to serve the same way (the release spec's fresh app, __test__/init-fresh.spec.ts).
  dir = appDir,
  port = 3000,
  host = 'localhost',
  inherit = false,
  maxBodyBytes = VERCEL_MAX_BODY_BYTES,
}) {
  // `port` 0: any free one (tests); Next itself always gets a free port, the proxy answers on `port`.
  if (port === 0) port = await freePort()
  const url = `http://${host}:${port}`
  const innerPort = await freePort()
  const child = spawn(
    process.execPath,
    [
      path.join(dir, 'node_modules', 'next', 'dist', 'bin', 'next'),
      'start',
      '-p',
      String(innerPort),
      '-H',
      'localhost',
    ],
    {
      cwd: dir,
      env: {
        ...process.env,
        NEXT_TELEMETRY_DISABLED: '1',
        SESSION_AUDIO_LOG: 'info',
        // Blob's completion webhook comes back to the app as the browser sees it.
        VERCEL_BLOB_CALLBACK_URL: url,
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  const lines = []
  const collect = (stream, echo) => {
    let buf = ''
    stream.on('data', (d) => {
      if (inherit) echo.write(d)
      buf += d
      let nl
      while ((nl = buf.indexOf('\n')) >= 0) {
        lines.push(buf.slice(0, nl))
        buf = buf.slice(nl + 1)
      }
    })
  }
  collect(child.stdout, process.stdout)
  collect(child.stderr, process.stderr)
  const proxy = await bodyCapProxy({ port, host, target: innerPort, maxBodyBytes })
  const deadline = Date.now() + 60_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`next start exited with ${child.exitCode}:\n${lines.join('\n')}`)
    try {
      await fetch(url, { redirect: 'manual' })
      break
    } catch {
      if (Date.now() > deadline) throw new Error(`next start did not answer on ${url}`)
      await new Promise((r) => setTimeout(r, 250))
    }
  }
  return {
    url,
    lines,
    /** session-audio's per-request log records (JSON lines with a status). */
    records: () =>
      lines
        .filter((l) => l.startsWith('{'))
        .map((l) => {
          try {
            return JSON.parse(l)
          } catch {
            return null
          }
        })
        .filter((r) => r && (r.status ?? r.fields?.status) !== undefined),
    async close() {
      await proxy.close()
      if (child.exitCode !== null) return
      child.kill('SIGTERM')
      await new Promise((r) => child.once('exit', r))
    },
  }
}
