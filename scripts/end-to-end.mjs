// The whole path on local defaults, with no cloud account: Clerk-, Convex- and Blob-compatible
// servers on 127.0.0.1, the addon behind a Next-style route server, and a client that records
// (uploads a generated 10 s WAV) and then plays like a browser's <audio> element (probe, seek).
//
//   npm run example            run the tour and exit (non-zero if anything is off)
//   npm run example -- --serve keep serving and print curl commands
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createRequire } from 'node:module'
import { startClerk } from '../stack/clerk.mjs'
import { startConvex } from '../stack/convex.mjs'
import { startBlob } from '../stack/blob.mjs'
import { startRouteServer } from '../stack/route-server.mjs'
import { sineWav } from '../stack/wav.mjs'

const { createAudioHandlers } = createRequire(import.meta.url)('../index.js')

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'session-audio-example-'))
const clerk = await startClerk()
const convex = await startConvex({ clerk })
const blob = await startBlob({ root })
// As `npx convex env set` on a real deployment: the store uploads may be attached from (the attach
// secret is the deployment's own, read below).
convex.env.SESSION_AUDIO_BLOB_HOSTS = blob.url
const handlers = createAudioHandlers({
  convexUrl: convex.url,
  clerkSecretKey: clerk.secretKey,
  clerkApiUrl: clerk.url,
  blobReadWriteToken: blob.token,
  blobApiUrl: blob.apiUrl,
  trustedHosts: [blob.host],
  allowLoopbackUpstream: true,
  convexSecret: convex.env.SESSION_AUDIO_CONVEX_SECRET,
})
const app = await startRouteServer({ handlers })
const sessionId = await convex.insertSession({ userId: 'user_alice', status: 'recording' })
const token = await clerk.sessionToken({ sub: 'user_alice' })
const url = `${app.url}/api/listening-sessions/${sessionId}/audio`
console.log(`clerk   ${clerk.url}\nconvex  ${convex.url}\nblob    ${blob.apiUrl}\nroute   ${url}\n`)

const auth = { authorization: `Bearer ${token}` }
const wav = sineWav(10)
let ok = true
const check = (cond, what) => {
  if (!cond) {
    ok = false
    console.log(`  ✗ ${what}`)
  }
}

const up = await fetch(url, {
  method: 'POST',
  headers: { ...auth, 'x-duration-ms': '10000', 'x-content-type': 'audio/wav' },
  body: wav,
})
const uploaded = await up.json()
console.log(`${'POST 10 s WAV (320 KB)'.padEnd(36)} ${up.status}  ${JSON.stringify(uploaded)}`)
check(up.status === 201 && uploaded.status === 'transcribing', 'upload accepted and session transcribing')

async function show(label, headers, expect) {
  const res = await fetch(url, { headers })
  const body = Buffer.from(await res.arrayBuffer())
  const range = res.headers.get('content-range') ?? '-'
  console.log(`${label.padEnd(36)} ${res.status}  ${String(body.length).padStart(7)} bytes  content-range: ${range}`)
  check(res.status === expect, `${label}: expected ${expect}`)
  return body
}

const full = await show('GET whole file', auth, 200)
check(full.equals(wav), 'streamed bytes identical to the upload')
await show('GET Range bytes=0-1 (Safari probe)', { ...auth, range: 'bytes=0-1' }, 206)
await show('GET Range bytes=160000- (seek)', { ...auth, range: 'bytes=160000-' }, 206)
await show('GET Range past the end', { ...auth, range: `bytes=${wav.length + 1}-` }, 416)
await show('GET without a token', {}, 401)
await show(
  "GET someone else's session",
  { authorization: `Bearer ${await clerk.sessionToken({ sub: 'user_mallory' })}` },
  404,
)
const again = await fetch(url, {
  method: 'POST',
  headers: { ...auth, 'x-duration-ms': '10000', 'x-content-type': 'audio/wav' },
  body: wav,
})
console.log(`${'POST again (no longer recording)'.padEnd(36)} ${again.status}  ${JSON.stringify(await again.json())}`)
check(again.status === 409, 'second upload refused')
console.log(
  `\nClerk template tokens minted: ${clerk.calls.tokens}, Convex queries: ${convex.calls.query}, mutations: ${convex.calls.mutation}`,
)
console.log(ok ? 'All as expected.' : 'Something was off (see ✗ above).')

if (process.argv.includes('--serve')) {
  console.log(
    `\nServing. Try (the token expires in 60 s):\n  curl -i -H 'authorization: Bearer ${token}' -H 'range: bytes=0-1' ${url}`,
  )
  process.on('SIGINT', async () => {
    await Promise.all([app.close(), clerk.close(), convex.close(), blob.close()])
    process.exit(0)
  })
} else {
  await Promise.all([app.close(), clerk.close(), convex.close(), blob.close()])
  fs.rmSync(root, { recursive: true, force: true })
  process.exit(ok ? 0 : 1)
}
