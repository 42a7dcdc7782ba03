// The benchmark's services in their own process (as the real ones are remote): Clerk-, Convex- and
// Blob-compatible servers, plus a small control API for the runner. Prints one JSON line when up.
//   POST /latency {clerk, convex, blob}     set the added service latency (ms)
//   POST /file {name, bytes}                a public WAV blob of that size → {url, pathname}
//   POST /session {userId, file?, status}   → {id}; `file` (a /file pathname) becomes the session's
//                                           audio, linked under its own listening-sessions/<id>/
//   POST /token {sub}                       a fresh session token (and its Clerk session) → {token}
//   GET  /counts                            Backend API / Convex / blob calls so far
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { startClerk } from '../stack/clerk.mjs'
import { startConvex } from '../stack/convex.mjs'
import { startBlob } from '../stack/blob.mjs'
import { json, listen, readBody } from '../stack/http-util.mjs'
import { writeLargeWav } from '../stack/wav.mjs'

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'session-audio-bench-'))
const clerk = await startClerk()
const convex = await startConvex({ clerk })
const blob = await startBlob({ root })
convex.env.SESSION_AUDIO_BLOB_HOSTS = blob.url

const control = await listen(async (req, res) => {
  const url = new URL(req.url, 'http://x')
  const body = req.method === 'POST' ? JSON.parse((await readBody(req)).toString() || '{}') : {}
  if (url.pathname === '/latency') {
    clerk.state.latencyMs = body.clerk ?? 0
    convex.state.latencyMs = body.convex ?? 0
    blob.state.latencyMs = body.blob ?? 0
    return json(res, 200, {})
  }
  if (url.pathname === '/file') {
    const pathname = `bench/${body.name}`
    const file = path.join(root, pathname)
    fs.mkdirSync(path.dirname(file), { recursive: true })
    writeLargeWav(file, body.bytes)
    const size = fs.statSync(file).size
    blob.meta.set(pathname, {
      access: 'public',
      contentType: 'audio/wav',
      size,
      uploadedAt: new Date().toISOString(),
      etag: `"${size}"`,
      maxAge: 60,
    })
    return json(res, 200, { url: `${blob.url}/${pathname}`, pathname, size })
  }
  if (url.pathname === '/session') {
    const { userId, file, status = 'ready' } = body
    const id = await convex.insertSession({ userId, status })
    if (file) {
      // Where an upload to this session would have put it: GET checks the path is the session's.
      const pathname = `listening-sessions/${id}/${path.basename(file)}`
      fs.mkdirSync(path.join(root, path.dirname(pathname)), { recursive: true })
      fs.linkSync(path.join(root, file), path.join(root, pathname))
      blob.meta.set(pathname, blob.meta.get(file))
      const audioUrl = `${blob.url}/${pathname}`
      await convex.run((ctx) => ctx.db.patch(id, { audioUrl }))
    }
    return json(res, 200, { id })
  }
  if (url.pathname === '/token') {
    // Long-lived, so a benchmark round never crosses an expiry.
    const iat = Math.floor(Date.now() / 1000)
    return json(res, 200, { token: await clerk.sessionToken({ sub: body.sub, claims: { exp: iat + 3600 } }) })
  }
  if (url.pathname === '/counts') {
    return json(res, 200, {
      clerk: clerk.calls.tokens + clerk.calls.jwks,
      convex: convex.calls.query + convex.calls.mutation,
      blobReads: blob.calls.read,
    })
  }
  json(res, 404, {})
})

process.stdout.write(
  JSON.stringify({
    control: control.url,
    clerk: { url: clerk.url, secretKey: clerk.secretKey, publicKeyPem: clerk.publicKeyPem },
    convex: { url: convex.url, secret: convex.env.SESSION_AUDIO_CONVEX_SECRET },
    blob: { url: blob.url, apiUrl: blob.apiUrl, host: blob.host, token: blob.token },
  }) + '\n',
)
const stop = async () => {
  await Promise.all([clerk.close(), convex.close(), blob.close(), control.close()])
  fs.rmSync(root, { recursive: true, force: true })
  process.exit(0)
}
process.on('SIGTERM', stop)
process.stdin.on('end', stop)
process.stdin.resume()
