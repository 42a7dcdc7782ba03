#!/usr/bin/env node
// `npm run stack` — the local stack on its own, for your own app or for `@vercel/blob` work:
//   node stack/cli.mjs [--dir .session-audio] [--clerk-port N] [--convex-port N] [--blob-port N] [--env-file F]
//                      [--blob-auth oidc|read-write]   (oidc, the default: BLOB_STORE_ID + a 12 h
//                      VERCEL_OIDC_TOKEN, as `vercel env pull` writes them; the store's OIDC key is new
//                      at each start, so a printed token is good for this run only. read-write:
//                      BLOB_READ_WRITE_TOKEN instead)
// Prints each service's URL and the environment to give your app; Ctrl-C stops it.
import fs from 'node:fs'
import { parseArgs } from 'node:util'
import { startLocalStack } from './local.mjs'

const { values: flags } = parseArgs({
  options: {
    dir: { type: 'string', default: '.session-audio' },
    'clerk-port': { type: 'string' },
    'convex-port': { type: 'string' },
    'blob-port': { type: 'string' },
    'env-file': { type: 'string' },
    'blob-auth': { type: 'string', default: 'oidc' },
  },
})
const port = (name) => (flags[name] === undefined ? undefined : Number(flags[name]))
const stack = await startLocalStack({
  dir: flags.dir,
  ports: { clerk: port('clerk-port'), convex: port('convex-port'), blob: port('blob-port') },
  blobAuth: flags['blob-auth'],
})
// dotenv syntax: a value of several lines (the PEM in BLOB_WEBHOOK_PUBLIC_KEY) goes in double
// quotes with `\n`, which dotenv (and so Next.js) turns back into line breaks.
const envLine = ([k, v]) => (v.includes('\n') ? `${k}="${v.trimEnd().replaceAll('\n', '\\n')}"` : `${k}=${v}`)
const envText = Object.entries(stack.env).map(envLine).join('\n')
if (flags['env-file']) fs.writeFileSync(flags['env-file'], envText + '\n')
console.log(`session-audio local stack (data in ${stack.dir})
  clerk   ${stack.clerk.url}   (Backend API, JWKS, dev sign-in at ${stack.env.SESSION_AUDIO_DEV_SIGN_IN_URL})
  convex  ${stack.convex.url}   (examples/convex functions; ${stack.convex.restored} documents restored)
  blob    ${stack.blob.apiUrl}   (Vercel Blob API; files under ${stack.dir}/blob)

Environment for your app:
${envText}
`)
const stop = async () => {
  await stack.close()
  process.exit(0)
}
process.on('SIGINT', stop)
process.on('SIGTERM', stop)
