// The recorder benchmark's stack, shaped as e2e/recorder.e2e.ts's: the loopback Clerk, Convex and
// Blob services in this process, the real route (the addon) on a route server that adds Vercel's
// OIDC token to every request it hands the route, a page on the same origin that imports
// /client.mjs, and Debian's Chromium signed in with Clerk's session cookie.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createRequire } from 'node:module'
import send from 'send'
import { chromium } from 'playwright-core'
import { AUTOPLAY_ARG, CHROMIUM, QUIET_ARGS, requireChromium } from '../../stack/chromium.mjs'
import { startClerk } from '../../stack/clerk.mjs'
import { startConvex } from '../../stack/convex.mjs'
import { startBlob } from '../../stack/blob.mjs'
import { startRouteServer } from '../../stack/route-server.mjs'
import { repo } from './common.mjs'

const USER = 'user_bench'

/**
 * `page`: the HTML the route server answers at `/`; `files`: other paths it answers, `{path:
 * {type, body}}`. Resolves with the services, the route, `newPage()`, `recordingSession()`,
 * `getSession(id)` and `close()`.
 */
export async function startBrowserStack({ page: html, files = {} }) {
  requireChromium()
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'session-audio-bench-recorder-'))
  const clerk = await startClerk()
  const convex = await startConvex({ clerk })
  const blob = await startBlob({ root: path.join(root, 'blob') })
  // As `npx convex env set` on a real deployment: the store uploads may be attached from.
  convex.env.SESSION_AUDIO_BLOB_HOSTS = blob.url
  const { createAudioHandlers } = createRequire(import.meta.url)(path.join(repo, 'index.js'))
  const handlers = {}
  const route = await startRouteServer({
    handlers,
    // Vercel hands every request its own OIDC token; the route reaches Blob with it alone.
    requestHeaders: () => ({ 'x-vercel-oidc-token': blob.oidcToken() }),
    fallback: (req, res) => {
      const url = new URL(req.url, 'http://x')
      if (url.pathname === '/') {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
        return res.end(html)
      }
      const file = files[url.pathname]
      if (file) {
        res.writeHead(200, { 'content-type': file.type, 'content-length': file.body.length })
        return res.end(file.body)
      }
      if (url.pathname !== '/client.mjs' && !url.pathname.startsWith('/client/')) {
        res.writeHead(404)
        return res.end()
      }
      send(req, url.pathname, { root: repo }).pipe(res)
    },
  })
  // A deployment as Vercel sets one up today: the store by id, no read-write token (OIDC).
  Object.assign(
    handlers,
    createAudioHandlers({
      convexUrl: convex.url,
      clerkSecretKey: clerk.secretKey,
      clerkApiUrl: clerk.url,
      trustedHosts: [blob.host],
      allowLoopbackUpstream: true,
      blobStoreId: blob.blobStoreIdEnv,
      // The route server plays Vercel, which sets x-vercel-oidc-token on every request.
      trustOidcHeader: true,
      blobApiUrl: blob.apiUrl,
      blobWebhookPublicKey: blob.webhookPublicKey,
      blobCallbackUrl: route.url,
      convexSecret: convex.env.SESSION_AUDIO_CONVEX_SECRET,
      logLevel: 'warn',
    }),
  )
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'session-audio-bench-profile-'))
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    args: [
      ...QUIET_ARGS,
      AUTOPLAY_ARG,
      // A page in the background would have its timers throttled; the simulated recorder runs on them.
      '--disable-background-timer-throttling',
      '--disable-renderer-backgrounding',
    ],
    headless: true,
  })
  // Signed in: Clerk's session cookie, as the app would have it.
  const token = await clerk.sessionToken({ sub: USER, claims: { exp: Math.floor(Date.now() / 1000) + 3600 } })
  await context.addCookies([{ name: '__session', value: token, url: route.url }])
  return {
    clerk,
    convex,
    blob,
    route,
    // What the route server calls, looked up per request: a benchmark may wrap a method.
    handlers,
    context,
    async newPage() {
      const page = await context.newPage()
      await page.goto(`${route.url}/`)
      await page.waitForFunction(() => window.ready === true)
      return page
    },
    /** A fresh session of the bench user, `recording` (ready for its audio). */
    recordingSession: () => convex.insertSession({ userId: USER, status: 'recording' }),
    getSession: (id) => convex.getSession(id),
    async close() {
      await context.close().catch(() => {})
      await route.close()
      await Promise.all([clerk.close(), convex.close(), blob.close()])
      fs.rmSync(root, { recursive: true, force: true })
      fs.rmSync(profile, { recursive: true, force: true })
    },
  }
}
