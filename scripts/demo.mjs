// `npm run demo` (after scripts/prepare-example.sh): the local stack on fixed ports with its data in
// .session-audio/, the example app on http://localhost:3000, one URL printed. Ctrl-C stops both.
import { startLocalStack } from '../stack/local.mjs'
import { startExampleApp } from '../stack/app.mjs'

const port = Number(process.env.PORT || 3000)
// Fixed ports (clerk, convex, blob = base, +1, +2): stored blob URLs name the blob port, so it must
// not change between runs. SESSION_AUDIO_STACK_PORT and SESSION_AUDIO_DIR move them.
const base = Number(process.env.SESSION_AUDIO_STACK_PORT || 4310)
const stack = await startLocalStack({
  dir: process.env.SESSION_AUDIO_DIR || '.session-audio',
  ports: { clerk: base, convex: base + 1, blob: base + 2 },
})
const app = await startExampleApp({ env: stack.env, port })
console.log(`
  session-audio demo: open ${app.url}

  Sign in as a dev user, create a session, record or pick a file, play it back.
  Local Clerk, Convex and Blob stand-ins keep their data in ${stack.dir} (${stack.convex.restored} documents restored).
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
