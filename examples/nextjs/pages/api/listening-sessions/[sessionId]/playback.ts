// The player's source: GET and HEAD of a session's audio, answered by session-audio's own GET
// handler (the one app/api/listening-sessions/[sessionId]/audio exports), from a Pages Router API
// route so that the answer keeps its Content-Length.
//
// Why not the App Router route: Next (16.4) removes `Content-Length` from every route handler's
// Response (`FORBIDDEN_HEADERS` in next/dist/server/send-response.js) and streams the body chunked;
// middleware cannot put it back (next/dist/server/lib/router-utils/resolve-routes.js drops it too).
// Without a length WebKit (measured in WebKitGTK) takes the answer for a live stream, does not buffer
// it, reads the fragmented MP4 its recorder makes pushed, and every seek lands back where playback
// was (docs/mp4-finalise.md, "WebKit"). A Pages API route writes to Node's response itself: the
// route's headers go out as they are. Uploads stay on the App Router route.
import type { NextApiRequest, NextApiResponse } from 'next'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { ReadableStream as NodeReadableStream } from 'node:stream/web'
import { handleAudioGet } from 'session-audio'

// No body to parse, and an answer of any size is expected (a recording), not a slow API reply.
export const config = { api: { bodyParser: false, responseLimit: false } }

export default async function playback(req: NextApiRequest, res: NextApiResponse) {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('allow', 'GET, HEAD')
    return res.status(405).end()
  }
  // A player drops a request when it seeks: stop reading the upstream then.
  const gone = new AbortController()
  res.on('close', () => gone.abort())
  const headers = new Headers()
  for (const [name, value] of Object.entries(req.headers))
    if (value !== undefined) headers.set(name, Array.isArray(value) ? value.join(', ') : value)
  const request = new Request(new URL(req.url ?? '/', `http://${req.headers.host ?? 'localhost'}`), {
    method: req.method,
    headers,
    signal: gone.signal,
  })
  const response = await handleAudioGet(request, {
    params: Promise.resolve({ sessionId: String(req.query.sessionId) }),
  })
  // One header at a time: Next's API response does not take writeHead's flat [name, value, …] list.
  for (const [name, value] of response.headers) res.appendHeader(name, value)
  res.writeHead(response.status)
  if (!response.body) return void res.end()
  // pipeline cancels the route's stream when the player goes away; that is not an error here.
  await pipeline(Readable.fromWeb(response.body as NodeReadableStream), res).catch(() => {})
}
