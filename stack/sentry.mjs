// A Sentry-compatible ingest server on 127.0.0.1: the envelope endpoint SDKs post to,
// `POST /api/{project}/envelope/`. It keeps every envelope raw (to prove what was *not* sent)
// and parsed (header, items).
import { listen, readBody } from './http-util.mjs'

export async function startSentry({ port = 0, publicKey = 'localpublickey' } = {}) {
  const envelopes = [] // { raw, auth, header, items: [{ header, payload }] }
  const peer = await listen(async (req, res) => {
    const m = new URL(req.url, 'http://x').pathname.match(/^\/api\/(\d+)\/envelope\/?$/)
    if (req.method !== 'POST' || !m) {
      res.writeHead(404)
      return res.end()
    }
    const raw = (await readBody(req)).toString('utf8')
    const lines = raw.split('\n')
    const header = JSON.parse(lines[0])
    const items = []
    for (let i = 1; i + 1 < lines.length; i += 2) {
      if (!lines[i]) continue
      items.push({ header: JSON.parse(lines[i]), payload: JSON.parse(lines[i + 1]) })
    }
    envelopes.push({ raw, auth: req.headers['x-sentry-auth'], project: m[1], header, items })
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ id: header.event_id ?? null }))
  }, port)
  return {
    url: peer.url,
    dsn: `http://${publicKey}@127.0.0.1:${peer.port}/1`,
    envelopes,
    /** The events received so far. */
    events: () => envelopes.flatMap((e) => e.items.filter((i) => i.header.type === 'event').map((i) => i.payload)),
    close: () => peer.close(),
  }
}
