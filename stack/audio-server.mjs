// The audio storage stand-in: serves files with `send` (the Range/conditional implementation
// Express uses), plus routes that misbehave on purpose for failure tests.
//   /audio/<file>    send: 200/206/304/412/416, ETag, Last-Modified, Accept-Ranges
//   /redirect?to=U   302 to U          /status/<code>   an empty response with that status
//   /reset/<file>    headers and 64 KiB, then the socket is destroyed
//   /stall/<file>    headers and 64 KiB, then nothing; `stalled` records when it closes
//   /html            text/html body
import fs from 'node:fs'
import path from 'node:path'
import send from 'send'
import { listen } from './http-util.mjs'

export async function startAudioServer({ root, port = 0 } = {}) {
  const requests = [] // { method, path, range, status }
  const stalled = [] // { openedAt, closedAt }
  const peer = await listen((req, res) => {
    const url = new URL(req.url, 'http://x')
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
