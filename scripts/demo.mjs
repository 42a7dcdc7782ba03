// `npm run demo` (after scripts/prepare-example.sh): the local stack on fixed ports with its data in
// .session-audio/, the example app on http://localhost:3000, one URL printed. Ctrl-C stops both.
// Blob is reached over OIDC, as a Vercel project set up today reaches it (direct uploads are then
// presigned); `npm run demo -- --blob-auth read-write` gives the app a read-write token instead.
import { parseArgs } from 'node:util'
import { startLocalStack } from '../stack/local.mjs'
import { startExampleApp } from '../stack/app.mjs'

const port = Number(process.env.PORT || 3000)
// Fixed ports (clerk, convex, blob = base, +1, +2): stored blob URLs name the blob port, so it must
// not change between runs. SESSION_AUDIO_STACK_PORT and SESSION_AUDIO_DIR move them.
const base = Number(process.env.SESSION_AUDIO_STACK_PORT || 4310)
const { values: flags } = parseArgs({ options: { 'blob-auth': { type: 'string', default: 'oidc' } } })
const stack = await startLocalStack({
  dir: process.env.SESSION_AUDIO_DIR || '.session-audio',
  ports: { clerk: base, convex: base + 1, blob: base + 2 },
  blobAuth: flags['blob-auth'],
})
const app = await startExampleApp({ env: stack.env, port })
console.log(`
  session-audio demo: open ${app.url}

  Sign in as a dev user, create a session, record or pick a file, play it back.
  Local Clerk, Convex and Blob stand-ins keep their data in ${stack.dir} (${stack.convex.restored} documents restored).
  Blob credentials: ${flags['blob-auth'] === 'oidc' ? 'OIDC (BLOB_STORE_ID + VERCEL_OIDC_TOKEN), as a new Vercel project; --blob-auth read-write for a token' : 'BLOB_READ_WRITE_TOKEN (--blob-auth oidc, the default, for OIDC)'}.
  Ctrl-C stops everything.
`)
let stopping = false
const stop = async () => {
  if (stopping) return
  stopping = true
  await app.close()
  await stack.close()
  process.exit(0)
}
process.on('SIGINT', stop)
process.on('SIGTERM', stop)
