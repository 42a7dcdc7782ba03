// The GET route end to end on local defaults, with no cloud account: Clerk-, Convex- and
// storage-compatible servers on 127.0.0.1, the addon behind a Next-style route server, and a
// client that plays the part of a browser's <audio> element (probe, seek, full read).
//
//   npm run example            run the tour and exit
//   npm run example -- --serve keep serving and print a curl command
import { startClerk } from '../stack/clerk.mjs'
import { startConvex } from '../stack/convex.mjs'
import { startAudioServer } from '../stack/audio-server.mjs'
import { startRouteServer } from '../stack/route-server.mjs'
import { sineWav } from '../stack/wav.mjs'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createRequire } from 'node:module'

const { createAudioHandlers } = createRequire(import.meta.url)('../index.js')

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'session-audio-example-'))
const wav = sineWav(10)
fs.writeFileSync(path.join(root, 'tone.wav'), wav)

const clerk = await startClerk()
const convex = await startConvex({ clerk })
const storage = await startAudioServer({ root })
const handlers = createAudioHandlers({
  convexUrl: convex.url,
  clerkSecretKey: clerk.secretKey,
  clerkApiUrl: clerk.url,
  trustedHosts: [storage.host],
  allowLoopbackUpstream: true,
})
const app = await startRouteServer({ handlers })
const sessionId = await convex.insertSession({
  userId: 'user_alice',
  status: 'ready',
  audioUrl: `${storage.url}/audio/tone.wav`,
})
const token = await clerk.sessionToken({ sub: 'user_alice' })
const url = `${app.url}/api/listening-sessions/${sessionId}/audio`

console.log(`clerk   ${clerk.url}\nconvex  ${convex.url}\nstorage ${storage.url}\nroute   ${url}\n`)

async function show(label, headers) {
  const res = await fetch(url, { headers })
  const body = Buffer.from(await res.arrayBuffer())
  const range = res.headers.get('content-range') ?? '-'
  console.log(`${label.padEnd(34)} ${res.status}  ${String(body.length).padStart(7)} bytes  content-range: ${range}`)
  return { res, body }
}

const auth = { authorization: `Bearer ${token}` }
const full = await show('owner, whole file', auth)
await show('owner, Range bytes=0-1 (probe)', { ...auth, range: 'bytes=0-1' })
await show('owner, Range bytes=160000- (seek)', { ...auth, range: 'bytes=160000-' })
await show('owner, Range past the end', { ...auth, range: `bytes=${wav.length + 1}-` })
await show('no token', {})
const mallory = await clerk.sessionToken({ sub: 'user_mallory' })
await show("someone else's session", { authorization: `Bearer ${mallory}` })
const identical = full.body.equals(wav)
console.log(`\nwhole-file bytes identical to the stored audio: ${identical}`)
console.log(`Clerk template tokens minted: ${clerk.calls.tokens}, Convex queries: ${convex.calls.query}`)

if (process.argv.includes('--serve')) {
  console.log(
    `\nServing. Try:\n  curl -i -H 'authorization: Bearer ${token}' -H 'range: bytes=0-1' ${url}\n(Ctrl-C to stop; the token expires in 60 s)`,
  )
  process.on('SIGINT', async () => {
    await Promise.all([app.close(), clerk.close(), convex.close(), storage.close()])
    process.exit(0)
  })
} else {
  await Promise.all([app.close(), clerk.close(), convex.close(), storage.close()])
  fs.rmSync(root, { recursive: true, force: true })
  process.exit(identical ? 0 : 1)
}
