// The local stack: Clerk-, Convex- and Blob-compatible services on 127.0.0.1, each on its own
// port, with state under one folder (default `.session-audio/`) so the demo's sessions and
// recordings survive a restart. The tests start the same servers with throwaway folders.
//
//   const stack = await startLocalStack({ dir: '.session-audio' })
//   stack.env   // the environment a Next.js app (and session-audio) reads to use it
//
// `blobAuth`: how that environment reaches Blob. 'oidc' (the default, as Vercel sets a project up
// today): BLOB_STORE_ID and a VERCEL_OIDC_TOKEN the store issued (12 h, as `vercel env pull` writes
// one), no read-write token; direct uploads are then presigned. 'read-write': BLOB_READ_WRITE_TOKEN,
// and direct uploads use client tokens. Both modes get BLOB_WEBHOOK_PUBLIC_KEY, the
// store's Ed25519 key (SPKI PEM, several lines) that presigned uploads' webhooks are signed with.
//   await stack.close()
import fs from 'node:fs'
import path from 'node:path'
import { startClerk } from './clerk.mjs'
import { startConvex } from './convex.mjs'
import { startBlob } from './blob.mjs'

/** Clerk's development-instance Backend API limit: 100 requests per 10 s. */
export const CLERK_DEV_RATE_LIMIT = 100

/**
 * A publishable key as Clerk encodes one: `pk_test_` + base64 of the Frontend API host and `$`.
 * Clerk's SDK compares that host with the session tokens' `iss` (a mismatch makes it look for
 * another instance's cookies), so it is the local issuer's `127.0.0.1:port`. Browsers are sent to
 * `NEXT_PUBLIC_CLERK_PROXY_URL` for the handshake, which is the same server under `localhost`.
 */
export const publishableKeyFor = (issuer) =>
  `pk_test_${Buffer.from(`${issuer.replace(/^https?:\/\//, '')}$`).toString('base64')}`

export async function startLocalStack({
  dir = '.session-audio',
  ports = {},
  rateLimit = CLERK_DEV_RATE_LIMIT,
  blobAuth = 'oidc',
} = {}) {
  if (blobAuth !== 'read-write' && blobAuth !== 'oidc') throw new TypeError(`blobAuth: 'read-write' or 'oidc'`)
  const root = path.resolve(dir)
  fs.mkdirSync(root, { recursive: true })
  const clerk = await startClerk({ port: ports.clerk ?? 0, rateLimit })
  const convex = await startConvex({ clerk, port: ports.convex ?? 0, dataFile: path.join(root, 'convex.json') })
  const blob = await startBlob({ root: path.join(root, 'blob'), port: ports.blob ?? 0 })
  // The two halves of the attach secret and the store's origin, as `npx convex env set` would.
  convex.env.SESSION_AUDIO_BLOB_HOSTS = blob.url
  // Browsers send `localhost` cookies to every port, so the sign-in page and the app share them.
  const clerkBrowserUrl = clerk.url.replace('127.0.0.1', 'localhost')
  const env = {
    CLERK_SECRET_KEY: clerk.secretKey,
    CLERK_API_URL: clerk.url,
    NEXT_PUBLIC_CLERK_PUBLISHABLE_KEY: publishableKeyFor(clerk.issuer),
    CLERK_TELEMETRY_DISABLED: '1',
    NEXT_PUBLIC_CLERK_PROXY_URL: clerkBrowserUrl,
    NEXT_PUBLIC_CONVEX_URL: convex.url,
    ...(blobAuth === 'oidc'
      ? { BLOB_STORE_ID: blob.blobStoreIdEnv, VERCEL_OIDC_TOKEN: blob.oidcToken() }
      : { BLOB_READ_WRITE_TOKEN: blob.token }),
    BLOB_WEBHOOK_PUBLIC_KEY: blob.webhookPublicKey,
    VERCEL_BLOB_API_URL: blob.apiUrl,
    // For the browser's `@vercel/blob/client`: `localhost`, so it sends whole bodies (it streams
    // them, which needs HTTP/2, only to other hosts).
    SESSION_AUDIO_BROWSER_BLOB_API_URL: blob.apiUrl.replace('127.0.0.1', 'localhost'),
    SESSION_AUDIO_TRUSTED_HOSTS: blob.host,
    SESSION_AUDIO_ALLOW_LOOPBACK_UPSTREAM: '1',
    SESSION_AUDIO_CONVEX_SECRET: convex.env.SESSION_AUDIO_CONVEX_SECRET,
    SESSION_AUDIO_DEV_SIGN_IN_URL: `${clerkBrowserUrl}/sign-in`,
    SESSION_AUDIO_DEV_SIGN_OUT_URL: `${clerkBrowserUrl}/sign-out`,
  }
  return {
    dir: root,
    clerk,
    convex,
    blob,
    env,
    async close() {
      await Promise.all([clerk.close(), convex.close(), blob.close()])
    },
  }
}
