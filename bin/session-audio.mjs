#!/usr/bin/env node
// npx session-audio init [--route <path>] [--blob-auth oidc|read-write] [--force] [--dry-run]
//   sets session-audio up in a Next.js app (bin/init.mjs)
// npx session-audio doctor [--json] [--route <path>] [--as-user <Clerk user id>] [--timeout <ms>]
//   checks the whole path live, from the app's environment (bin/doctor.mjs)
// npx session-audio sweep --older-than 24h [--dry-run]
// Deletes (or with --dry-run lists) the blobs under listening-sessions/ that no session references,
// older than the threshold. Reads the same environment as the route: NEXT_PUBLIC_CONVEX_URL,
// the Blob credentials (BLOB_STORE_ID with VERCEL_OIDC_TOKEN, as `vercel env pull` writes them, or
// BLOB_READ_WRITE_TOKEN), SESSION_AUDIO_SWEEP_SECRET (and VERCEL_BLOB_API_URL if set).
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const USAGE = [
  'usage: session-audio init [--route <path>] [--blob-auth oidc|read-write] [--force] [--dry-run]',
  '       session-audio doctor [--json] [--route <path>] [--as-user <Clerk user id>] [--timeout <ms>]',
  '       session-audio sweep --older-than <duration: 90s, 30m, 24h, 7d or ms> [--dry-run]',
].join('\n')

/** `24h` → ms; a bare number is ms. */
function parseDuration(raw) {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(String(raw ?? '').trim())
  if (!m) return null
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] ?? 'ms']
  return Math.round(Number(m[1]) * unit)
}

function fail(message) {
  process.stderr.write(`session-audio: ${message}\n${USAGE}\n`)
  process.exit(2)
}

/** `sweep`: exits 2 on a usage error, 1 when the sweep fails. */
async function sweep(args) {
  let olderThanMs = null
  let dryRun = false
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]
    if (arg === '--dry-run') dryRun = true
    else if (arg === '--older-than') olderThanMs = parseDuration(args[++i])
    else if (arg.startsWith('--older-than=')) olderThanMs = parseDuration(arg.slice('--older-than='.length))
    else fail(`unknown argument ${JSON.stringify(arg)}`)
  }
  if (olderThanMs === null) fail('--older-than is required (a duration such as 24h)')

  const { sweepOrphanAudio } = require('../index.js')
  try {
    const report = await sweepOrphanAudio({ olderThanMs, dryRun })
    for (const pathname of report.orphans) process.stdout.write(`${dryRun ? 'would delete' : 'deleted'} ${pathname}\n`)
    process.stdout.write(
      `${report.listed} listed, ${report.attached} attached, ${report.keptYoung} unattached but younger than ` +
        `${olderThanMs} ms (kept), ${report.orphans.length} orphaned: ` +
        `${dryRun ? 'dry run, nothing deleted' : `${report.deleted} deleted`}\n`,
    )
  } catch (err) {
    process.stderr.write(`session-audio: sweep failed: ${err.message}\n`)
    process.exit(1)
  }
}

const [command, ...args] = process.argv.slice(2)
// exitCode, not exit(): stdout may be a pipe that is still being written (asynchronous on macOS).
if (command === 'init') process.exitCode = await (await import('./init.mjs')).init(args)
else if (command === 'doctor') process.exitCode = await (await import('./doctor.mjs')).doctor(args)
else if (command === 'sweep') await sweep(args)
else fail(command ? `unknown command ${JSON.stringify(command)}` : 'no command')
