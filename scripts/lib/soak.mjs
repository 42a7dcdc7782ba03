// The chaos soak: a few hundred real recordings through every upload flow while Clerk, Convex and
// Blob fail at random, then the invariant for every recording: attached and playable, or still
// stored and retryable. Zero lost, zero dangling URLs, zero panics (no 500), the process alive.
// `npm run soak` (scripts/soak.mjs) runs it for a given time; __test__/soak.spec.ts runs a short one.
//
// Everything is the project's own loopback stack (stack/): the addon behind the route server that
// does what Next.js does, the Clerk-, Convex- and Blob-compatible servers with their failure
// injection. Four flows, picked at random per recording:
//   stream      POST with the audio as the body (the route stores it and attaches it)
//   client      session-audio/client's uploadSessionAudio over client tokens (read-write deployment)
//   presigned   the same over presigned URLs (an OIDC deployment, as Vercel sets one up today)
//   closed-tab  @vercel/blob/client's upload(), then the tab is gone: only Blob's signed webhook
//               can attach it (Blob retries a failed webhook; so does the settle phase, as Blob
//               would keep doing)
// A client retries what is not final, as session-audio/client does; a final refusal of a valid
// recording is itself a failure of the soak.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { upload } from '@vercel/blob/client'
import { createAudioHandlers } from '../../index.js'
import { uploadSessionAudio } from '../../client.mjs'
import { startBlob } from '../../stack/blob.mjs'
import { startClerk } from '../../stack/clerk.mjs'
import { startConvex } from '../../stack/convex.mjs'
import { startRouteServer, VERCEL_MAX_BODY_BYTES } from '../../stack/route-server.mjs'
import { sineWav } from '../../stack/wav.mjs'

const FLOWS = ['stream', 'client', 'presigned', 'closed-tab']
const USERS = 5

/** A small seeded generator (mulberry32), so a failing run can be repeated with its seed. */
function random(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** The faults injected, each on one call of one dependency (stack/http-util.mjs `takeFailure`). */
const FAULTS = [
  ['convex 503 on a mutation', (s) => (s.convex.state.fail = { status: 503, kind: 'mutation' })],
  ['convex 500 on a query', (s) => (s.convex.state.fail = { status: 500, kind: 'query' })],
  ['convex 401 on a mutation', (s) => (s.convex.state.fail = { status: 401, kind: 'mutation' })],
  ['convex 401 on a query', (s) => (s.convex.state.fail = { status: 401, kind: 'query' })],
  [
    'convex: a mutation throws',
    (s) => (s.convex.state.fail = { functionError: 'database overloaded', kind: 'mutation' }),
  ],
  [
    'a mutation applies, its answer lost',
    (s) => (s.convex.state.fail = { kind: 'mutation', afterRun: true, status: 503 }),
  ],
  [
    'a mutation applies, its connection reset',
    (s) => (s.convex.state.fail = { kind: 'mutation', afterRun: true, status: 500, reset: true }),
  ],
  ['clerk 503 on a template token', (s) => (s.clerk.state.fail = { status: 503, kind: 'tokens' })],
  ['blob 503 on a put', (s) => (s.blob.state.fail = { status: 503, code: 'service_unavailable', kind: 'put' })],
  ['blob 503 on a head', (s) => (s.blob.state.fail = { status: 503, code: 'service_unavailable', kind: 'head' })],
  [
    'blob 404 store_not_found on a head',
    (s) => (s.blob.state.fail = { status: 404, code: 'store_not_found', kind: 'head' }),
  ],
  ['blob resets a put mid-body', (s) => (s.blob.state.resetAfterBytes = 20_000)],
]

/**
 * Run the soak. `seconds`: how long faults are injected (uploads start only within it);
 * `uploads`: how many recordings at most; `concurrency`: clients at once; `faultEveryMs`: how often
 * a new fault is armed. Resolves with the figures and the list of violations (empty when it held).
 */
export async function runSoak({
  seconds = 60,
  uploads = 300,
  concurrency = 8,
  faultEveryMs = 150,
  seed = Date.now() % 2 ** 31,
  log = () => {},
} = {}) {
  const rand = random(seed)
  const pick = (list) => list[Math.floor(rand() * list.length)]
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'session-audio-soak-'))
  const clerk = await startClerk()
  const convex = await startConvex({ clerk })
  const blob = await startBlob({ root: path.join(dir, 'blob') })
  convex.env.SESSION_AUDIO_BLOB_HOSTS = blob.url
  const s = { clerk, convex, blob }
  const savedEnv = {
    oidc: process.env.VERCEL_OIDC_TOKEN,
    retries: process.env.VERCEL_BLOB_RETRIES,
    api: process.env.VERCEL_BLOB_API_URL,
  }
  const base = {
    convexUrl: convex.url,
    clerkSecretKey: clerk.secretKey,
    clerkApiUrl: clerk.url,
    trustedHosts: [blob.host],
    allowLoopbackUpstream: true,
    blobApiUrl: blob.apiUrl,
    blobWebhookPublicKey: blob.webhookPublicKey,
    convexSecret: convex.env.SESSION_AUDIO_CONVEX_SECRET,
    logLevel: 'off',
  }
  const rwHandlers = {}
  const oidcHandlers = {}
  // Two deployments: one with a read-write token (client tokens), one over OIDC (presigned).
  const rw = await startRouteServer({ handlers: rwHandlers, maxBodyBytes: VERCEL_MAX_BODY_BYTES })
  const oidc = await startRouteServer({ handlers: oidcHandlers, maxBodyBytes: VERCEL_MAX_BODY_BYTES })
  Object.assign(rwHandlers, createAudioHandlers({ ...base, blobReadWriteToken: blob.token, blobCallbackUrl: rw.url }))
  // The OIDC deployment reads VERCEL_OIDC_TOKEN per request, as on Vercel.
  process.env.VERCEL_OIDC_TOKEN = blob.oidcToken()
  Object.assign(
    oidcHandlers,
    createAudioHandlers({ ...base, blobStoreId: blob.blobStoreIdEnv, blobCallbackUrl: oidc.url }),
  )
  // `upload()` (closed-tab) finds the store as the SDK always does.
  process.env.VERCEL_BLOB_API_URL = blob.apiUrl
  process.env.VERCEL_BLOB_RETRIES = '0'

  const figures = {
    seed,
    seconds,
    recordings: 0,
    byFlow: Object.fromEntries(FLOWS.map((f) => [f, 0])),
    attempts: 0,
    refusedRetried: 0,
    refusals: {},
    faultsArmed: 0,
    faultsHit: 0,
    faultKinds: {},
    webhooksRedelivered: 0,
    attached: 0,
    keptRetryable: 0,
    keptOrphans: 0,
    lost: 0,
    dangling: 0,
    status500: 0,
  }
  const violations = []
  const recordings = []
  const tokenFor = (userId) => clerk.sessionToken({ sub: userId, sid: `sess_soak_${userId}` })

  const started = Date.now()
  const deadline = started + seconds * 1000
  // Chaos: arm a random fault on one dependency every few ms, for `seconds` (or until the uploads
  // are done, if sooner); count those a request took. Then every fault is off: the attempts still
  // under way meet the recovery, as clients would after an outage, rather than a tail of new faults
  // that would last as long as the slowest client keeps retrying.
  let chaos = true
  const armed = { clerk: null, convex: null, blob: null }
  const countHits = () => {
    for (const name of ['clerk', 'convex', 'blob']) {
      if (armed[name] && s[name].state.fail === null && !(name === 'blob' && s.blob.state.resetAfterBytes)) {
        figures.faultsHit++
        figures.faultKinds[armed[name]] = (figures.faultKinds[armed[name]] ?? 0) + 1
        armed[name] = null
      }
    }
  }
  const chaosLoop = (async () => {
    while (chaos && Date.now() < deadline) {
      countHits()
      // Outages of Clerk and Convex open their breakers (every request fails fast for 5 s), so
      // they come a quarter as often as the faults that cost one request each.
      const [what, arm] = pick(FAULTS)
      const opensBreaker = /^(convex|clerk) 5\d\d/.test(what) || /answer lost|connection reset/.test(what)
      if (opensBreaker && rand() > 0.25) {
        await new Promise((r) => setTimeout(r, faultEveryMs))
        continue
      }
      const target = what.split(/[ :]/)[0] // clerk, convex or blob: each has one fault slot
      if (!armed[target]) {
        arm(s)
        armed[target] = what
        figures.faultsArmed++
      }
      await new Promise((r) => setTimeout(r, faultEveryMs))
    }
    countHits()
    convex.state.fail = null
    clerk.state.fail = null
    blob.state.fail = null
    blob.state.resetAfterBytes = null
    log(`faults off after ${((Date.now() - started) / 1000).toFixed(1)} s`)
  })()

  const refused = (status, body) => ({ status, code: body?.error?.code ?? `http_${status}`, final: body?.error?.final })

  /** One try of a recording's flow: `{ ok }`, or the refusal (`final` as the route said). */
  async function attempt(rec) {
    figures.attempts++
    const token = await tokenFor(rec.userId)
    const headers = { authorization: `Bearer ${token}` }
    const bytes = rec.bytes
    try {
      if (rec.flow === 'stream') {
        const res = await fetch(`${rw.url}/api/listening-sessions/${rec.id}/audio`, {
          method: 'POST',
          headers: { ...headers, 'x-duration-ms': String(rec.ms), 'x-content-type': 'audio/wav' },
          body: bytes,
        })
        const body = await res.json().catch(() => null)
        return res.ok ? { ok: true } : refused(res.status, body)
      }
      if (rec.flow === 'client' || rec.flow === 'presigned') {
        const route = rec.flow === 'client' ? rw : oidc
        await uploadSessionAudio(rec.id, new Blob([bytes], { type: 'audio/wav' }), {
          durationMs: rec.ms,
          routeUrl: `${route.url}/api/listening-sessions/${rec.id}/audio`,
          headers,
          blobApiUrl: blob.apiUrl,
          name: `take-${rec.n}`,
        })
        return { ok: true }
      }
      // closed-tab: the upload, then nothing but Blob's webhook.
      await upload(`listening-sessions/${rec.id}/take-${rec.n}.wav`, new Blob([bytes], { type: 'audio/wav' }), {
        access: 'private',
        handleUploadUrl: `${rw.url}/api/listening-sessions/${rec.id}/audio`,
        headers,
        clientPayload: JSON.stringify({ durationMs: rec.ms, contentType: 'audio/wav' }),
        contentType: 'audio/wav',
      })
      return { ok: true, webhookOnly: true }
    } catch (err) {
      // session-audio/client's errors carry the route's status and code; the SDK's do not.
      return { status: err?.status ?? 0, code: err?.code ?? String(err?.message ?? err), final: err?.final }
    }
  }

  /** Try until done, a final refusal, or `until`. */
  async function drive(rec, until) {
    while (Date.now() < until) {
      const out = await attempt(rec)
      rec.last = out
      if (out.status === 500) figures.status500++
      if (out.ok) return
      figures.refusedRetried++
      const key = `${out.status} ${out.code}`.slice(0, 80)
      figures.refusals[key] = (figures.refusals[key] ?? 0) + 1
      // Final: the route says retrying cannot help (a 409 also when an earlier try, or Blob's
      // webhook, attached it after all). Whether the recording survived is the invariant's to say.
      if (out.final === true) return
      await new Promise((r) => setTimeout(r, 50 + rand() * 250))
    }
  }

  let next = 0
  const users = Array.from({ length: USERS }, (_, i) => `user_soak_${i}`)
  async function worker() {
    while (next < uploads && Date.now() < deadline) {
      const n = next++
      const userId = pick(users)
      const ms = 500 + Math.floor(rand() * 4) * 250
      const rec = {
        n,
        userId,
        flow: FLOWS[n % FLOWS.length],
        ms,
        bytes: sineWav(ms / 1000),
        id: await convex.insertSession({ userId, status: 'recording' }),
      }
      recordings.push(rec)
      figures.recordings++
      figures.byFlow[rec.flow]++
      await drive(rec, deadline)
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  chaos = false
  await chaosLoop
  log(`uploads done after ${((Date.now() - started) / 1000).toFixed(1)} s; settling`)

  // Settle, as the world would after the outage: Blob's own tries of each webhook end, Blob
  // delivers again the webhooks that failed until the route takes or refuses each for good (a
  // breaker the faults opened answers 503 until its window passes), and clients send again what is
  // not attached (drive retries until settleBy). Each step waits on those answers, not a fixed
  // pause, so the settle takes as long as the recovery does.
  const settleBy = Date.now() + 60_000
  const pause = (ms) => new Promise((r) => setTimeout(r, ms))
  while (blob.webhooks.some((hook) => !hook.done) && Date.now() < settleBy) await pause(50)
  for (const hook of blob.webhooks) {
    if (hook.status === 200) continue
    figures.webhooksRedelivered++
    for (;;) {
      const r = await fetch(hook.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-vercel-signature': hook.signature },
        body: hook.body,
      })
      hook.status = r.status
      await r.arrayBuffer()
      if (r.status === 500) figures.status500++
      // An outage's answer (429, 502–504) is worth another try, as Blob would; anything else is
      // the route's word on it.
      const outage = r.status === 429 || (r.status >= 502 && r.status <= 504)
      if (!outage || Date.now() >= settleBy) break
      await pause(100 + rand() * 200)
    }
  }
  await Promise.all(
    recordings.map(async (rec) => {
      const doc = await convex.getSession(rec.id)
      if (doc.status === 'transcribing') return
      if (rec.last?.webhookOnly) return // the tab is gone: only Blob can finish it
      if (rec.last?.final === true) return
      await drive(rec, settleBy)
    }),
  )

  // The invariant, per recording.
  const stored = new Set(blob.list())
  for (const rec of recordings) {
    const doc = await convex.getSession(rec.id)
    const mine = [...stored].filter((p) => p.startsWith(`listening-sessions/${rec.id}/`))
    if (doc.status === 'transcribing') {
      if (!stored.has(doc.audioPathname)) {
        figures.dangling++
        violations.push(`recording ${rec.n} (${rec.flow}): attached to ${doc.audioPathname}, which is not stored`)
        continue
      }
      const res = await fetch(`${rw.url}/api/listening-sessions/${rec.id}/audio`, {
        headers: { authorization: `Bearer ${await tokenFor(rec.userId)}` },
      })
      const got = Buffer.from(await res.arrayBuffer())
      if (res.status !== 200 || !got.equals(rec.bytes)) {
        violations.push(`recording ${rec.n} (${rec.flow}): GET answered ${res.status} with ${got.length} bytes`)
        continue
      }
      figures.attached++
      figures.keptOrphans += mine.length - 1
    } else if (mine.length > 0 && doc.status === 'recording') {
      // Not attached, but its audio is stored and the session still takes it: retryable.
      figures.keptRetryable++
      figures.keptOrphans += mine.length - 1
    } else {
      figures.lost++
      violations.push(
        `recording ${rec.n} (${rec.flow}) lost: session ${doc.status}, ${mine.length} blobs, last ${JSON.stringify(rec.last)}`,
      )
    }
  }
  figures.status500 += [...rw.log, ...oidc.log].filter((r) => r.status === 500).length
  if (figures.status500 > 0) violations.push(`${figures.status500} answers were 500 (a panic or a bug)`)
  figures.elapsedSeconds = Math.round((Date.now() - started) / 100) / 10

  await Promise.all([rw.close(), oidc.close(), clerk.close(), convex.close(), blob.close()])
  if (savedEnv.oidc === undefined) delete process.env.VERCEL_OIDC_TOKEN
  else process.env.VERCEL_OIDC_TOKEN = savedEnv.oidc
  for (const [key, name] of [
    ['retries', 'VERCEL_BLOB_RETRIES'],
    ['api', 'VERCEL_BLOB_API_URL'],
  ]) {
    if (savedEnv[key] === undefined) delete process.env[name]
    else process.env[name] = savedEnv[key]
  }
  fs.rmSync(dir, { recursive: true, force: true })
  return { figures, violations }
}
