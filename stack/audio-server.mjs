// The audio storage stand-in: serves files with `send` (the Range/conditional implementation
// Express uses), plus routes that misbehave on purpose for failure tests.
//   Any path may start with /listening-sessions/<id>: that prefix is ignored.
//   /audio/<file>    send: 200/206/304/412/416, ETag, Last-Modified, Accept-Ranges
//   /redirect?to=U   302 to U          /status/<code>   an empty response with that status
//   /reset/<file>    headers and 64 KiB, then the socket is destroyed
//   /stall/<file>    headers and 64 KiB, then nothing; `stalled` records when it closes
//   /multi/<file>    a storage that serves multi-range requests as multipart/byteranges
//                    (RFC 9110 §14.6; `send` answers those with the whole file)
//   /html            text/html body
import fs from 'node:fs'
import path from 'node:path'
import send from 'send'
import { listen } from './http-util.mjs'

/** Resolve one `first-last` / `first-` / `-suffix` against `size`; null when unsatisfiable. */
function resolveRange(spec, size) {
  const [a, b] = spec.trim().split('-')
  if (a === '') return size > 0 ? [Math.max(0, size - Number(b)), size - 1] : null
  const start = Number(a)
  const end = b === '' ? size - 1 : Math.min(Number(b), size - 1)
  return start < size && start <= end ? [start, end] : null
}

/** A file with multi-range support: 200 without Range, 206 (one part or multipart), or 416. */
function multiRange(req, res, file) {
  const data = fs.readFileSync(file)
  const size = data.length
  const header = req.headers.range
  if (!header) {
    res.writeHead(200, { 'content-type': 'audio/wav', 'content-length': size, 'accept-ranges': 'bytes' })
    return res.end(data)
  }
  const specs = header
    .replace(/^bytes=/i, '')
    .split(',')
    .filter((s) => s.trim() !== '')
  const ranges = specs.map((s) => resolveRange(s, size)).filter(Boolean)
  if (ranges.length === 0) {
    res.writeHead(416, { 'content-range': `bytes */${size}`, 'content-length': 0 })
    return res.end()
  }
  if (ranges.length === 1) {
    const [s, e] = ranges[0]
    res.writeHead(206, {
      'content-type': 'audio/wav',
      'content-range': `bytes ${s}-${e}/${size}`,
      'content-length': e - s + 1,
      'accept-ranges': 'bytes',
    })
    return res.end(data.subarray(s, e + 1))
  }
  const boundary = 'sa' + Math.random().toString(16).slice(2)
  const parts = ranges.map(([s, e]) =>
    Buffer.concat([
      Buffer.from(`\r\n--${boundary}\r\ncontent-type: audio/wav\r\ncontent-range: bytes ${s}-${e}/${size}\r\n\r\n`),
      data.subarray(s, e + 1),
    ]),
  )
  const body = Buffer.concat([...parts, Buffer.from(`\r\n--${boundary}--\r\n`)])
  res.writeHead(206, {
    'content-type': `multipart/byteranges; boundary=${boundary}`,
    'content-length': body.length,
    'accept-ranges': 'bytes',
  })
  res.end(body)
}

export async function startAudioServer({ root, port = 0 } = {}) {
  const requests = [] // { method, path, range, status }
  const stalled = [] // { openedAt, closedAt }
  const peer = await listen((req, res) => {
    const url = new URL(req.url, 'http://x')
    // Stored audio lives under its session's prefix (GET checks it); the routes below ignore it.
    url.pathname = url.pathname.replace(/^\/listening-sessions\/[^/]+(?=\/)/, '')
    const entry = { method: req.method, path: url.pathname, range: req.headers.range, headers: req.headers }
    requests.push(entry)
    res.on('finish', () => (entry.status = res.statusCode))
    let m
    if ((m = url.pathname.match(/^\/audio\/(.+)$/))) {
      return send(req, `/${m[1]}`, { root, etag: true, lastModified: true, acceptRanges: true })
        .on('error', (err) => {
          res.statusCode = err.status || 500
          res.end()
        })
        .pipe(res)
    }
    if (url.pathname === '/redirect') {
      res.writeHead(302, { location: url.searchParams.get('to') })
      return res.end()
    }
    if ((m = url.pathname.match(/^\/status\/(\d+)$/))) {
      res.writeHead(Number(m[1]), { 'content-type': 'text/plain' })
      return res.end('status')
    }
    if ((m = url.pathname.match(/^\/(reset|stall)\/(.+)$/))) {
      const file = path.join(root, decodeURIComponent(m[2]))
      const size = fs.statSync(file).size
      res.writeHead(200, { 'content-type': 'audio/wav', 'content-length': size, 'accept-ranges': 'bytes' })
      const head = Buffer.alloc(64 * 1024)
      const fd = fs.openSync(file, 'r')
      fs.readSync(fd, head, 0, head.length, 0)
      fs.closeSync(fd)
      res.write(head)
      if (m[1] === 'reset') {
        setTimeout(() => req.socket.destroy(), 20)
      } else {
        const record = { openedAt: Date.now(), closedAt: null }
        stalled.push(record)
        req.socket.on('close', () => (record.closedAt = Date.now()))
      }
      return
    }
    if ((m = url.pathname.match(/^\/multi\/(.+)$/)))
      return multiRange(req, res, path.join(root, decodeURIComponent(m[1])))
    if (url.pathname === '/html') {
      res.writeHead(200, { 'content-type': 'text/html' })
      return res.end('<script>alert(1)</script>')
    }
    res.writeHead(404)
    res.end()
  }, port)
  return {
    url: peer.url,
    port: peer.port,
    host: `127.0.0.1:${peer.port}`,
    requests,
    stalled,
    get connections() {
      return peer.connections
    },
    get openSockets() {
      return peer.openSockets
    },
    close: () => peer.close(),
  }
}
