import { ConvexError } from 'convex/values'
import { query } from './_generated/server'

/** What `handleAudioPost` checks before accepting a byte: may this user record, and how much. */
export const getForCurrentUser = query({
  args: {},
  handler: async (ctx) => {
    const identity = await ctx.auth.getUserIdentity()
    if (!identity) throw new ConvexError({ code: 'unauthenticated' })
    const row = await ctx.db
      .query('entitlements')
      .withIndex('by_user', (q) => q.eq('userId', identity.subject))
      .unique()
    if (!row) return { canRecord: true }
    return {
      canRecord: row.canRecord,
      ...(row.maxRecordingMs !== undefined ? { maxRecordingMs: row.maxRecordingMs } : {}),
      ...(row.maxUploadBytes !== undefined ? { maxUploadBytes: row.maxUploadBytes } : {}),
    }
  },
})
