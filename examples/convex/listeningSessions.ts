// The Convex side of session-audio. Each function checks the caller's identity itself: the
// database enforces ownership, and the addon double-checks it.
import { ConvexError, v } from 'convex/values'
import { mutation, query } from './_generated/server'
import { sessionStatus } from './schema'

/** What `handleAudioGet`/`handleAudioPost` read: `null` for a missing or foreign session. */
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
    }
  },
})

/**
 * `recording` → `transcribing`, atomically (a Convex mutation is a transaction): of two uploads
 * racing for one session, exactly one gets here first; the other sees `transcribing` and is refused.
 */
/**
 * Whether `audioUrl` and `pathname` name one blob under `listening-sessions/{sessionId}/`: the
 * pathname has that prefix and one more segment (no dot segments, no encoded slashes), and the
 * URL's path is exactly that pathname. URL parsing resolves `..` and `%2e%2e` first, so neither
 * can climb out of the prefix.
 */
function isSessionAudio(audioUrl: string, pathname: string, sessionId: string): boolean {
  const prefix = `listening-sessions/${sessionId}/`
  if (!pathname.startsWith(prefix)) return false
  const name = pathname.slice(prefix.length)
  if (!/^[A-Za-z0-9_-][A-Za-z0-9._-]*$/.test(name)) return false
  let url: URL
  try {
    url = new URL(audioUrl)
  } catch {
    return false
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return false
  if (url.username || url.password) return false
  return url.pathname === `/${pathname}`
}

export const attachAudio = mutation({
  args: {
    sessionId: v.string(),
    audioUrl: v.string(),
    pathname: v.string(),
    contentType: v.string(),
    sizeBytes: v.number(),
    durationMs: v.number(),
  },
  handler: async (ctx, args) => {
    const identity = await ctx.auth.getUserIdentity()
    if (!identity) throw new ConvexError({ code: 'unauthenticated' })
    const id = ctx.db.normalizeId('listeningSessions', args.sessionId)
    const doc = id && (await ctx.db.get(id))
    if (!doc || doc.userId !== identity.subject) throw new ConvexError({ code: 'session_not_found' })
    if (doc.status !== 'recording') throw new ConvexError({ code: 'invalid_session_state', status: doc.status })
    // This is a public mutation: anyone signed in can call it directly, with any arguments. The
    // audio must be this session's own upload, so that nobody can point their session at another
    // blob (GET would fetch whatever is stored here).
    if (!isSessionAudio(args.audioUrl, args.pathname, doc._id)) {
      throw new ConvexError({ code: 'invalid_audio_url' })
    }
    await ctx.db.patch(doc._id, {
      status: 'transcribing',
      audioUrl: args.audioUrl,
      audioPathname: args.pathname,
      audioContentType: args.contentType,
      audioSizeBytes: args.sizeBytes,
      durationMs: args.durationMs,
      updatedAt: Date.now(),
    })
    return { status: 'transcribing' as const }
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
