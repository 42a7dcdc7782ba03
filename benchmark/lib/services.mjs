// The stack under test, wired once per run: the services process (Clerk, Convex, Blob and a
// control API, benchmark/stack-process.mjs), the two proxy processes (benchmark/proxy-process.mjs)
// configured against it, and the fixtures every scenario shares: a big and a medium WAV, each the
// audio of its own ready session, and one long-lived session token.
import { MiB } from './common.mjs'
import { getJson, post } from './http.mjs'
import { start, stop } from './proc.mjs'

export async function startServices(cfg) {
  const stack = start('stack-process.mjs')
  const svc = await stack.info
  const ctl = svc.control
  const big = await post(ctl, '/file', { name: 'big.wav', bytes: cfg.bigBytes })
  const med = await post(ctl, '/file', { name: 'medium.wav', bytes: cfg.medBytes })
  const { token } = await post(ctl, '/token', { sub: 'user_bench' })
  const bigSession = (await post(ctl, '/session', { userId: 'user_bench', file: big.pathname })).id
  const medSession = (await post(ctl, '/session', { userId: 'user_bench', file: med.pathname })).id
  const proxyEnv = {
    NEXT_PUBLIC_CONVEX_URL: svc.convex.url,
    CLERK_SECRET_KEY: svc.clerk.secretKey,
    CLERK_API_URL: svc.clerk.url,
    BLOB_READ_WRITE_TOKEN: svc.blob.token,
    VERCEL_BLOB_API_URL: svc.blob.apiUrl,
    SESSION_AUDIO_TRUSTED_HOSTS: svc.blob.host,
    SESSION_AUDIO_ALLOW_LOOPBACK_UPSTREAM: '1',
    SESSION_AUDIO_BLOB_ACCESS: 'public',
    SESSION_AUDIO_LOG: 'off',
    SESSION_AUDIO_MAX_UPLOAD_BYTES: String(1024 * MiB),
    SESSION_AUDIO_CONVEX_SECRET: svc.convex.secret,
  }
  const proxies = {}
  for (const v of ['session-audio', 'pure-js']) {
    proxies[v] = start('proxy-process.mjs', [v], proxyEnv)
    proxies[v].url = (await proxies[v].info).url
  }
  return {
    svc,
    ctl,
    big,
    med,
    bigSession,
    medSession,
    proxyEnv,
    proxies,
    auth: { authorization: `Bearer ${token}` },
    /** Where a variant serves a session's audio (`direct`: the blob URL itself). */
    audioUrl: (variant, sessionId, file) =>
      variant === 'direct' ? file.url : `${proxies[variant].url}/api/listening-sessions/${sessionId}/audio`,
    /** The process that does a variant's work (`direct`: the storage's). */
    pidOf: (variant) => (variant === 'direct' ? stack.child.pid : proxies[variant].child.pid),
    /** Added latency of each service, ms: `{clerk, convex, blob}` (missing = 0). */
    setLatency: (l) => post(ctl, '/latency', l),
    /** A fresh session of the bench user, `recording` (ready for an upload). */
    recordingSession: async () => (await post(ctl, '/session', { userId: 'user_bench', status: 'recording' })).id,
    /** Backend API / Convex / blob calls so far. */
    counts: () => getJson(`${ctl}/counts`),
    stop() {
      for (const p of Object.values(proxies)) stop(p)
      stop(stack)
    },
  }
}
