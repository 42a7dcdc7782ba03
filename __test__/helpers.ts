// Shared setup: the loopback peers (Clerk, Convex, audio storage) and handlers wired to them.
import { expect } from 'vitest'
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { startClerk } from '../stack/clerk.mjs'
import { startConvex } from '../stack/convex.mjs'
import { startAudioServer } from '../stack/audio-server.mjs'
import { startBlob } from '../stack/blob.mjs'
import { sineWav } from '../stack/wav.mjs'
import { createAudioHandlers, type AudioOptions } from '../index.js'

/** Real encoded audio shipped with the tests (see fixtures/audio/README.md). */
export const FIXTURES = path.join(__dirname, 'fixtures', 'audio')
export const fixture = (name: string): Buffer => fs.readFileSync(path.join(FIXTURES, name))

/** Poll `cond` every 10 ms until it holds (true) or `ms` pass (false). */
export async function until(cond: () => boolean | Promise<boolean>, ms = 3000): Promise<boolean> {
  const end = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > end) return false
    await new Promise((r) => setTimeout(r, 10))
  }
  return true
}

export type Stack = Awaited<ReturnType<typeof startStack>>

/** One set of route handlers, bound to one configuration (and its caches). */
export type Handlers = ReturnType<typeof createAudioHandlers>

/** `clerk`: options for the loopback Clerk (`rateLimit`, `refusalStatus`, …; see stack/clerk.mjs). */
export async function startStack({ clerk: clerkOptions = {} }: { clerk?: Parameters<typeof startClerk>[0] } = {}) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'session-audio-test-'))
  const wav = sineWav(5) // 5 s, 160 044 bytes of real PCM audio
  fs.writeFileSync(path.join(root, 'tone.wav'), wav)
  const clerk = await startClerk(clerkOptions)
  const convex = await startConvex({ clerk })
  const audio = await startAudioServer({ root })
  const blob = await startBlob({ root: path.join(root, 'blob') })
  // As `npx convex env set` on a real deployment: the store uploads may be attached from.
  convex.env.SESSION_AUDIO_BLOB_HOSTS = blob.url

  const options = (extra: AudioOptions = {}): AudioOptions => ({
    convexUrl: convex.url,
    clerkSecretKey: clerk.secretKey,
    clerkApiUrl: clerk.url,
    trustedHosts: [audio.host, blob.host],
    allowLoopbackUpstream: true,
    blobReadWriteToken: blob.token,
    blobApiUrl: blob.apiUrl,
    blobWebhookPublicKey: blob.webhookPublicKey,
    convexSecret: convex.env.SESSION_AUDIO_CONVEX_SECRET,
    ...extra,
  })

  /**
   * Handlers of their own, from `options(extra)`: empty caches, a closed breaker, new connection
   * pools, and the environment as it is now. Pass them to `get`/`post` as `handlers`.
   */
  const handlers = (extra: AudioOptions = {}): Handlers => createAudioHandlers(options(extra))
  /**
   * The options of a deployment set up as Vercel sets one up today: the store named by
   * `blobStoreId` (BLOB_STORE_ID), no read-write token; each request then needs an OIDC token
   * (`x-vercel-oidc-token`, or `VERCEL_OIDC_TOKEN` at request time: `blob.oidcToken()` issues them).
   * The header is read (`trustOidcHeader`) as on Vercel, where the platform sets it: the tests play
   * the platform.
   */
  const oidcOptions = (extra: AudioOptions = {}): AudioOptions =>
    options({ blobReadWriteToken: undefined, blobStoreId: blob.blobStoreIdEnv, trustOidcHeader: true, ...extra })
  // What `get` and `post` use unless given `handlers`: one set per stack, built on first use.
  let shared: Handlers | undefined

  /**
   * A session owned by `userId` whose audio is `audioPath` on the audio server (none if null),
   * stored under the session's own prefix as uploads are (`/listening-sessions/<id>/audio/tone.wav`;
   * the audio server ignores the prefix). An absolute URL is stored as given, with `{session}`
   * replaced by `listening-sessions/<id>`.
   */
  async function session(
    userId = 'user_alice',
    audioPath: string | null = '/audio/tone.wav',
    extra = {},
  ): Promise<string> {
    const id: string = await convex.insertSession({ userId, status: 'ready', ...extra })
    if (audioPath !== null) {
      const template = audioPath.startsWith('http') ? audioPath : `${audio.url}/{session}${audioPath}`
      const audioUrl = template.replace('{session}', `listening-sessions/${id}`)
      await convex.run((ctx: any) => ctx.db.patch(id, { audioUrl }))
    }
    return id
  }

  async function get(
    sessionId: string,
    {
      token,
      headers = {},
      method = 'GET',
      handlers: route = (shared ??= handlers()),
    }: { token?: string; headers?: Record<string, string>; method?: string; handlers?: Handlers } = {},
  ) {
    const h = new Headers(headers)
    if (token) h.set('authorization', `Bearer ${token}`)
    const request = new Request(`http://app.local/api/listening-sessions/${sessionId}/audio`, { method, headers: h })
    return route.GET(request, { params: Promise.resolve({ sessionId }) })
  }

  /** POST `body` as the upload of `sessionId`. Set `content-length` in `headers` to declare it. */
  async function post(
    sessionId: string,
    body: BodyInit | null,
    {
      token,
      headers = {},
      handlers: route = (shared ??= handlers()),
    }: { token?: string; headers?: Record<string, string>; handlers?: Handlers } = {},
  ) {
    const h = new Headers(headers)
    if (token) h.set('authorization', `Bearer ${token}`)
    const request = new Request(`http://app.local/api/listening-sessions/${sessionId}/audio`, {
      method: 'POST',
      headers: h,
      body,
      duplex: 'half',
    } as RequestInit)
    return route.POST(request, { params: Promise.resolve({ sessionId }) })
  }

  return {
    root,
    blob,
    post,
    wav,
    clerk,
    convex,
    audio,
    options,
    oidcOptions,
    handlers,
    session,
    get,
    async close() {
      await Promise.all([clerk.close(), convex.close(), audio.close(), blob.close()])
      fs.rmSync(root, { recursive: true, force: true })
    },
  }
}

/** The Convex token Clerk's JWT template mints for `sub` (a fresh Clerk session `sess_<tag>_<sub>`). */
export async function convexToken(s: Stack, sub: string, tag: string) {
  const sid = `sess_${tag}_${sub}`
  await s.clerk.sessionToken({ sub, sid })
  const res = await fetch(`${s.clerk.url}/v1/sessions/${sid}/tokens/convex`, {
    method: 'POST',
    headers: { authorization: `Bearer ${s.clerk.secretKey}` },
  })
  expect(res.status).toBe(200)
  return ((await res.json()) as { jwt: string }).jwt
}

/** Store 1 s of WAV at `pathname` with the read-write token, as an upload would, dated `ageMs` ago. */
export async function storeDated(s: Stack, pathname: string, ageMs: number) {
  const res = await fetch(`${s.blob.apiUrl}/?pathname=${encodeURIComponent(pathname)}`, {
    method: 'PUT',
    headers: {
      authorization: `Bearer ${s.blob.token}`,
      'x-api-version': '12',
      'x-vercel-blob-access': 'private',
      'x-content-type': 'audio/wav',
    },
    body: sineWav(1),
  })
  expect(res.status).toBe(200)
  const { pathname: stored } = await res.json()
  s.blob.meta.get(stored).uploadedAt = new Date(Date.now() - ageMs).toISOString()
  return stored as string
}

export async function errorOf(res: Response) {
  expect(res.headers.get('content-type')).toMatch(/^application\/json/)
  expect(res.headers.get('cache-control')).toBe('no-store')
  const body = await res.json()
  expect(Object.keys(body)).toEqual(['error'])
  expect(typeof body.error.message).toBe('string')
  // Every refusal says whether it is about the recording itself (final) or worth another try.
  expect(typeof body.error.final).toBe('boolean')
  return {
    status: res.status,
    code: body.error.code as string,
    message: body.error.message as string,
    final: body.error.final as boolean,
  }
}

export type AttachFields = {
  sessionId: string
  audioUrl: string
  pathname: string
  contentType: string
  sizeBytes: number
  durationMs: number
}

/**
 * attachAudio's arguments signed as the route signs them (crates/core/src/upload/attach_sign.rs), written
 * a third time here so that the Rust side, the template and this one each check the others against
 * `fixtures/attach-signature.json`.
 */
export function signAttach(secret: string, args: AttachFields, expiresAt = Date.now() + 5 * 60 * 1000) {
  const all = { ...args, expiresAt }
  const fields = ['sessionId', 'audioUrl', 'pathname', 'contentType', 'sizeBytes', 'durationMs', 'expiresAt'] as const
  let message = 'session-audio:attachAudio:v1'
  for (const f of fields) message += `\n${f}=${Buffer.byteLength(String(all[f]))}:${all[f]}`
  return { ...all, signature: crypto.createHmac('sha256', secret).update(message).digest('hex') }
}

/** Run `fn` with Blob's completion webhooks held back (the browser's event decides), then let them go (and wait for their answers). */
export async function withHeldWebhooks(s: Stack, fn: () => Promise<void>) {
  s.blob.state.holdWebhooks = true
  try {
    await fn()
  } finally {
    s.blob.state.holdWebhooks = false
    await s.blob.releaseWebhooks()
  }
}

/** Let held webhooks go at the moment `complete()` (the browser's event) is sent: both race; its answer. */
export async function completeAsWebhooksGo<T>(s: Stack, complete: () => Promise<T>): Promise<T> {
  s.blob.state.holdWebhooks = false
  const [res] = await Promise.all([complete(), s.blob.releaseWebhooks()])
  return res
}

/**
 * A finaliser's answer to one hostile input, as both finaliser specs check it: the incremental path
 * throws `code` (or finishes when `code` is null), the whole-Blob path returns the input unchanged
 * (or a new Blob), and both together take under 2 s.
 */
export async function expectFinaliserAnswer<E extends Error & { code: string }>(
  bytes: Buffer,
  code: string | null,
  {
    incremental,
    ErrorClass,
    finalise,
    toBlob,
  }: {
    incremental: (bytes: Buffer) => unknown
    ErrorClass: abstract new (...args: never[]) => E
    finalise: (blob: Blob) => Promise<Blob>
    toBlob: (bytes: Buffer) => Blob
  },
) {
  const t0 = performance.now()
  let thrown: unknown = null
  try {
    incremental(bytes)
  } catch (err) {
    thrown = err
  }
  if (code === null) expect(thrown).toBeNull()
  else {
    expect(thrown).toBeInstanceOf(ErrorClass)
    expect((thrown as E).code).toBe(code)
  }
  const blob = toBlob(bytes)
  const out = await finalise(blob)
  if (code === null) expect(out).not.toBe(blob)
  else expect(out).toBe(blob) // returned unchanged
  expect(performance.now() - t0).toBeLessThan(2000)
}

/** POST `audio` through the route (the addon measures it as it streams) and return durationMs. */
export async function measuredByRoute(s: Stack, audio: Buffer, contentType: string, declaredMs: number) {
  const id = await s.session('user_alice', null, { status: 'recording' })
  const res = await s.post(id, audio, {
    token: await s.clerk.sessionToken({ sub: 'user_alice' }),
    headers: {
      'x-duration-ms': String(Math.round(declaredMs)),
      'x-content-type': contentType,
      'content-length': String(audio.length),
    },
  })
  expect(res.status, await res.clone().text()).toBe(201)
  const body = await res.json()
  expect(body.durationSource).toBe('measured')
  return body.durationMs as number
}

/**
 * The stack with a route server in front of `handlers` (a body over 4.5 MB refused, as on Vercel),
 * and `upload()` from `@vercel/blob/client` pointed at the local store; `close()` undoes it all.
 */
export async function startRouteStack(handlers: Record<string, unknown>) {
  const { startRouteServer, VERCEL_MAX_BODY_BYTES } = await import('../stack/route-server.mjs')
  const stack = await startStack()
  const server = await startRouteServer({ handlers: handlers as never, maxBodyBytes: VERCEL_MAX_BODY_BYTES })
  Object.assign(process.env, { VERCEL_BLOB_API_URL: stack.blob.apiUrl, VERCEL_BLOB_RETRIES: '0' })
  const close = async () => {
    for (const k of ['VERCEL_BLOB_API_URL', 'VERCEL_BLOB_RETRIES']) delete process.env[k]
    await server.close()
    await stack.close()
  }
  return { s: stack, route: server, close }
}

/**
 * What a recorder uploads for the recording `raw` with part 1 sent while recording (the
 * provisional header region, then the rest, then the WebM Cues `finish()` appends), and what
 * `finish()` makes of it (the final file), from a finaliser `create()` of client/finalise.
 */
export function finalisedForms(raw: Uint8Array, create: () => any) {
  const f = create()
  const out: Uint8Array = f.push(raw)
  const done = f.finish()
  const H = f.headerLength as number
  const cat = (...parts: Uint8Array[]) => Buffer.concat(parts.map((p) => Buffer.from(p)))
  return {
    header: done.header as Uint8Array,
    tail: done.tail as Uint8Array,
    provisional: cat(out, done.tail),
    final: cat(done.header, out.subarray(H), done.tail),
    headerLength: H,
    durationMs: done.durationMs as number,
  }
}

/**
 * A MediaRecorder for the recorder in Node (install it as `globalThis.MediaRecorder`): it hands over
 * the chunks a test gives it (`emit`, in order, as Blobs), and when it stops, `stream.bytes` (a
 * whole recording handed over at once) or an empty last chunk, then `stop`, as MediaRecorder does.
 * `StandInMediaRecorder.last` is the one made last.
 */
export class StandInMediaRecorder extends EventTarget {
  static last: StandInMediaRecorder | null = null
  static isTypeSupported = () => true
  state = 'inactive'
  ondataavailable: ((e: { data: Blob }) => void) | null = null
  onerror: unknown = null
  constructor(
    private stream: { bytes?: Uint8Array },
    private options: { mimeType: string },
  ) {
    super()
    StandInMediaRecorder.last = this
  }
  get mimeType() {
    return this.options.mimeType
  }
  start() {
    this.state = 'recording'
  }
  pause() {
    this.state = 'paused'
  }
  resume() {
    this.state = 'recording'
  }
  emit(bytes: Uint8Array) {
    this.ondataavailable?.({ data: new Blob([bytes], { type: this.options.mimeType }) })
  }
  stop() {
    if (this.state === 'inactive') return
    this.state = 'inactive'
    this.emit(this.stream.bytes ?? new Uint8Array(0))
    this.dispatchEvent(new Event('stop'))
  }
}
