// The Convex side of session-audio. Each function checks the caller's identity itself: the
// database enforces ownership, and the addon double-checks it.
import { ConvexError, v } from 'convex/values'
import { mutation, query } from './_generated/server'
import { sessionStatus } from './schema'

/**
 * What `handleAudioGet`/`handleAudioPost` read: `null` for a missing or foreign session. The stored
 * audio's pathname, size and duration let the route answer a repeated upload completion from this
 * record, without reading storage again.
 */
export const getForAudio = query({
  args: { sessionId: v.string() },
  handler: async (ctx, { sessionId }) => {
    const identity = await ctx.auth.getUserIdentity()
    if (!identity) throw new ConvexError({ code: 'unauthenticated' })
    const id = ctx.db.normalizeId('listeningSessions', sessionId)
    const doc = id && (await ctx.db.get(id))
    if (!doc || doc.userId !== identity.subject) return null
    return {
      _id: doc._id,
      userId: doc.userId,
      status: doc.status,
      audioUrl: doc.audioUrl ?? null,
      audioContentType: doc.audioContentType ?? null,
      audioPathname: doc.audioPathname ?? null,
      audioSizeBytes: doc.audioSizeBytes ?? null,
      durationMs: doc.durationMs ?? null,
    }
  },
})

/**
 * Whether `audioUrl` and `pathname` name one blob under `listening-sessions/{sessionId}/`: the
 * pathname has that prefix and one more segment (no dot segments, no encoded slashes), and the
 * URL's path is exactly that pathname. URL parsing resolves `..` and `%2e%2e` first, so neither
 * can climb out of the prefix.
 */
function isSessionAudio(url: URL, pathname: string, sessionId: string): boolean {
  const prefix = `listening-sessions/${sessionId}/`
  if (!pathname.startsWith(prefix)) return false
  const name = pathname.slice(prefix.length)
  if (!/^[A-Za-z0-9_-][A-Za-z0-9._-]*$/.test(name)) return false
  if (url.username || url.password || url.search || url.hash) return false
  return url.pathname === `/${pathname}`
}

/**
 * The origins this deployment's audio may live on, from its environment (`npx convex env set`):
 * - `SESSION_AUDIO_BLOB_STORE_ID`: the Vercel Blob store (`store_AbC123` as the dashboard shows it,
 *   or `abc123` as in `BLOB_READ_WRITE_TOKEN=vercel_blob_rw_abc123_…`) → its public and private host;
 * - `SESSION_AUDIO_BLOB_HOSTS`: a comma list of further origins (`https://host[:port]`, or a bare
 *   `host[:port]`, which means https). `http://` is accepted for loopback only (local stacks).
 * `null` when neither is set or an entry is malformed: nothing can be attached then.
 */
function allowedOrigins(): Set<string> | null {
  const origins = new Set<string>()
  const store = (process.env.SESSION_AUDIO_BLOB_STORE_ID ?? '')
    .trim()
    .replace(/^store_/i, '')
    .toLowerCase()
  if (store) {
    if (!/^[a-z0-9-]{1,63}$/.test(store)) return null
    origins.add(`https://${store}.public.blob.vercel-storage.com`)
    origins.add(`https://${store}.private.blob.vercel-storage.com`)
  }
  for (const raw of (process.env.SESSION_AUDIO_BLOB_HOSTS ?? '').split(',')) {
    const entry = raw.trim()
    if (!entry) continue
    let url: URL
    try {
      url = new URL(entry.includes('://') ? entry : `https://${entry}`)
    } catch {
      return null
    }
    const loopback = ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname)
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) return null
    origins.add(url.origin)
  }
  return origins.size ? origins : null
}

/** The audio types the route stores (its canonical essences), with `;key=value` parameters. */
const AUDIO_TYPE =
  /^audio\/(webm|ogg|mpeg|mp4|aac|wav|flac)(;[a-z0-9!#$&^_.+-]{1,64}=[\x21\x23-\x3a\x3c-\x7e]{1,128}){0,8}$/
/** Sane ceilings, above any limit the route can be configured to: 5 GiB, 24 hours. */
const MAX_AUDIO_BYTES = 5 * 1024 * 1024 * 1024
const MAX_DURATION_MS = 24 * 60 * 60 * 1000
/** The route signs for 5 minutes; an expiry further ahead than this is not the route's. */
const MAX_SIGNATURE_AHEAD_MS = 15 * 60 * 1000
/** `attachAudio`'s stand-in key when this deployment has no usable secret: verified, never trusted. */
export const NO_SECRET = 'session-audio: no SESSION_AUDIO_CONVEX_SECRET on this deployment'

type AttachArgs = {
  sessionId: string
  audioUrl: string
  pathname: string
  contentType: string
  sizeBytes: number
  durationMs: number
  expiresAt: number
}

/**
 * The exact bytes the route signs (crates/core/src/upload/attach_sign.rs): a version line, then per field,
 * in this order, `\n{name}={UTF-8 byte length}:{value}`, numbers in plain decimal. The lengths make
 * it unambiguous: no value can spill into the next field. `null` when a value cannot be encoded
 * one way only (a string that is not well-formed Unicode, a number that is not a safe integer).
 */
export function attachMessage(args: AttachArgs): Uint8Array | null {
  const fields = ['sessionId', 'audioUrl', 'pathname', 'contentType', 'sizeBytes', 'durationMs', 'expiresAt'] as const
  return signedMessage(
    'session-audio:attachAudio:v1',
    fields.map((name) => [name, args[name]]),
  )
}

/**
 * The bytes `npx session-audio doctor` signs to ask `checkAttachSetup` whether both sides hold the
 * same secret: the same encoding under another version line, so a probe's signature can never be
 * an attach's (every attach message starts with `session-audio:attachAudio:v1`).
 */
export function probeMessage(blobOrigin: string): Uint8Array | null {
  return signedMessage('session-audio:attachSecretProbe:v1', [['blobOrigin', blobOrigin]])
}

function signedMessage(version: string, fields: [string, string | number][]): Uint8Array | null {
  const encoder = new TextEncoder()
  let text = version
  for (const [name, raw] of fields) {
    if (typeof raw === 'number' && !(Number.isSafeInteger(raw) && raw >= 0)) return null
    const value = String(raw)
    const bytes = encoder.encode(value)
    // A lone surrogate would encode as U+FFFD: two different strings, one message.
    if (new TextDecoder().decode(bytes) !== value) return null
    text += `\n${name}=${bytes.length}:${value}`
  }
  return encoder.encode(text)
}

/** Whether `signature` (lowercase hex) is the HMAC-SHA256 of the arguments under `secret`. */
export async function attachSignatureValid(secret: string, args: AttachArgs, signature: string): Promise<boolean> {
  return await macValid(secret, attachMessage(args), signature)
}

/** Whether `signature` (lowercase hex) is the HMAC-SHA256 of `message` under `secret`. */
async function macValid(secret: string, message: Uint8Array | null, signature: string): Promise<boolean> {
  if (!message || !/^[0-9a-f]{64}$/.test(signature)) return false
  const mac = new Uint8Array(32)
  for (let i = 0; i < 32; i++) mac[i] = parseInt(signature.slice(2 * i, 2 * i + 2), 16)
  const key = await crypto.subtle.importKey(
    'raw',
    new TextEncoder().encode(secret),
    { name: 'HMAC', hash: 'SHA-256' },
    false,
    ['verify'],
  )
  // `verify` compares in constant time.
  return await crypto.subtle.verify('HMAC', key, mac, new Uint8Array(message))
}

/**
 * `recording` → `transcribing`, atomically (a Convex mutation is a transaction): of two uploads
 * racing for one session, exactly one gets here first; the other sees `transcribing` and is refused.
 *
 * This is a public mutation, so any signed-in user can call it directly, with any arguments. Only
 * the route may attach (it checks entitlements, limits, the bytes and the duration first), so the
 * arguments must carry the route's signature: HMAC-SHA256 under `SESSION_AUDIO_CONVEX_SECRET`, the
 * same value set here (`npx convex env set`) and where the route runs, good for a few minutes. The
 * mutation still checks for itself what it can: the caller owns the session, it is `recording`,
 * the audio is this session's own upload on this deployment's store, of an audio type and of a
 * sane size and duration.
 */
export const attachAudio = mutation({
  args: {
    sessionId: v.string(),
    audioUrl: v.string(),
    pathname: v.string(),
    contentType: v.string(),
    sizeBytes: v.number(),
    durationMs: v.number(),
    // Optional only so that a call without them (an older route, or anyone else) gets a clear
    // ConvexError rather than a validation failure.
    expiresAt: v.optional(v.number()),
    signature: v.optional(v.string()),
  },
  handler: async (ctx, { signature, expiresAt, ...rest }) => {
    const identity = await ctx.auth.getUserIdentity()
    if (!identity) throw new ConvexError({ code: 'unauthenticated' })
    if (signature === undefined || expiresAt === undefined) {
      throw new ConvexError({ code: 'invalid_attach_signature', reason: 'missing' })
    }
    const args = { ...rest, expiresAt }
    // Any signed-in user can call this, so a deployment without a usable secret answers exactly as
    // one whose secret the signature does not match: the answer must not tell a caller whether this
    // deployment can be attached to at all. The MAC is computed either way (under a stand-in key
    // that can never count) so the time taken does not tell it either. The owner still learns it:
    // `npx session-audio doctor` (checkAttachSetup: "different secrets, or Convex has none") and
    // the route's own 503 attach_secret_mismatch, whose message names this setting.
    const secret = process.env.SESSION_AUDIO_CONVEX_SECRET
    const usable = secret !== undefined && secret.length >= 32
    const verified = await attachSignatureValid(usable ? secret : NO_SECRET, args, signature)
    if (!usable || !verified) throw new ConvexError({ code: 'invalid_attach_signature', reason: 'mismatch' })
    const now = Date.now()
    if (args.expiresAt < now || args.expiresAt > now + MAX_SIGNATURE_AHEAD_MS) {
      throw new ConvexError({ code: 'invalid_attach_signature', reason: 'expired' })
    }
    // Only a caller holding the secret (the route) gets this far, so it may learn that the store
    // setting is what is missing: it answers 503 config_missing naming it.
    const origins = allowedOrigins()
    if (!origins) throw new ConvexError({ code: 'attach_not_configured' })
    const id = ctx.db.normalizeId('listeningSessions', args.sessionId)
    const doc = id && (await ctx.db.get(id))
    if (!doc || doc.userId !== identity.subject) throw new ConvexError({ code: 'session_not_found' })
    // The same blob attached already (a retried completion after an attach whose answer was lost,
    // or Blob's webhook and the browser racing): done, not a conflict. Idempotent for the blob.
    if (doc.audioUrl === args.audioUrl && doc.audioPathname === args.pathname) return { status: doc.status }
    if (doc.status !== 'recording') throw new ConvexError({ code: 'invalid_session_state', status: doc.status })
    // The audio must be this session's own upload on this deployment's store, so that nobody can
    // point their session at another blob or another host (GET would fetch whatever is stored here).
    let url: URL | null = null
    try {
      url = new URL(args.audioUrl)
    } catch {}
    if (!url || !origins.has(url.origin) || !isSessionAudio(url, args.pathname, doc._id)) {
      throw new ConvexError({ code: 'invalid_audio_url' })
    }
    const sane = (n: number, max: number) => Number.isSafeInteger(n) && n >= 1 && n <= max
    if (
      !AUDIO_TYPE.test(args.contentType) ||
      !sane(args.sizeBytes, MAX_AUDIO_BYTES) ||
      !sane(args.durationMs, MAX_DURATION_MS)
    ) {
      throw new ConvexError({ code: 'invalid_audio' })
    }
    await ctx.db.patch(doc._id, {
      status: 'transcribing',
      audioUrl: args.audioUrl,
      audioPathname: args.pathname,
      audioContentType: args.contentType,
      audioSizeBytes: args.sizeBytes,
      durationMs: args.durationMs,
      updatedAt: now,
    })
    return { status: 'transcribing' as const }
  },
})

/**
 * What `npx session-audio doctor` asks to learn, without a signed-in user, whether this deployment
 * holds the route's `SESSION_AUDIO_CONVEX_SECRET` and allows the route's Blob store. The caller
 * signs `probeMessage(blobOrigin)` with its secret; the answer is only `match` / `mismatch` for
 * the secret (a deployment without one, or with one too short, answers `mismatch` too: the answer
 * tells an anonymous caller nothing about its configuration) and, once the signature proved the caller holds
 * it, `match` / `mismatch` / `missing` for the origin (`https://<store>.private.blob.vercel-storage.com`,
 * or a local emulator's). It reads no table and writes nothing. Anyone may call it, so it must not help forge an attach: a probe is
 * signed under its own version line (never an attach message), and "match" for a probe says only
 * what `attachAudio` would say to the route anyway. The secret never leaves this deployment.
 */
export const checkAttachSetup = query({
  args: { blobOrigin: v.string(), signature: v.string() },
  handler: async (_ctx, { blobOrigin, signature }) => {
    // Anyone may call this: the cheap refusals first (an origin is a short URL; a signature is
    // 64 hex digits), so a caller cannot make it encode and MAC megabytes.
    if (blobOrigin.length > 2048 || !/^[0-9a-f]{64}$/.test(signature)) return { secret: 'mismatch' as const }
    const secret = process.env.SESSION_AUDIO_CONVEX_SECRET
    if (!secret || secret.length < 32 || !(await macValid(secret, probeMessage(blobOrigin), signature))) {
      return { secret: 'mismatch' as const }
    }
    const origins = allowedOrigins()
    const store = !origins ? 'missing' : origins.has(blobOrigin) ? 'match' : 'mismatch'
    return { secret: 'match' as const, store: store as 'missing' | 'match' | 'mismatch' }
  },
})

/**
 * Which of these blobs are some session's audio (by pathname or URL): what `sweepOrphanAudio` asks
 * before it deletes anything. It runs without a user, so it is guarded by a shared secret instead:
 * set `SESSION_AUDIO_SWEEP_SECRET` in the Convex deployment's environment and the same value where
 * the sweep runs. Without it set here, it answers nobody.
 */
export const attachedAudio = query({
  args: { secret: v.string(), blobs: v.array(v.object({ pathname: v.string(), url: v.string() })) },
  handler: async (ctx, { secret, blobs }) => {
    const expected = process.env.SESSION_AUDIO_SWEEP_SECRET
    if (!expected || !sameSecret(secret, expected)) throw new ConvexError({ code: 'forbidden' })
    const attached: string[] = []
    for (const { pathname, url } of blobs) {
      const byPath = await ctx.db
        .query('listeningSessions')
        .withIndex('by_audio_pathname', (q) => q.eq('audioPathname', pathname))
        .first()
      const byUrl =
        byPath ??
        (await ctx.db
          .query('listeningSessions')
          .withIndex('by_audio_url', (q) => q.eq('audioUrl', url))
          .first())
      if (byUrl) attached.push(pathname)
    }
    return attached
  },
})

/** Compare without an early exit, so the time taken says nothing about the secret. */
function sameSecret(a: string, b: string): boolean {
  let diff = a.length ^ b.length
  for (let i = 0; i < Math.max(a.length, b.length); i++) diff |= (a.charCodeAt(i) || 0) ^ (b.charCodeAt(i) || 0)
  return diff === 0
}

/** A new session in `recording`, owned by the caller (used by the demo and the tests). */
export const create = mutation({
  args: {},
  handler: async (ctx) => {
    const identity = await ctx.auth.getUserIdentity()
    if (!identity) throw new ConvexError({ code: 'unauthenticated' })
    const now = Date.now()
    return await ctx.db.insert('listeningSessions', {
      userId: identity.subject,
      status: 'recording',
      createdAt: now,
      updatedAt: now,
    })
  },
})

/** The caller's sessions, newest first (for the demo page). */
export const listMine = query({
  args: {},
  handler: async (ctx) => {
    const identity = await ctx.auth.getUserIdentity()
    if (!identity) return []
    return await ctx.db
      .query('listeningSessions')
      .withIndex('by_user', (q) => q.eq('userId', identity.subject))
      .order('desc')
      .take(50)
  },
})

export { sessionStatus }
