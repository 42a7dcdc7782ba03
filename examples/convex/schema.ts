import { defineSchema, defineTable } from 'convex/server'
import { v } from 'convex/values'

export const sessionStatus = v.union(
  v.literal('recording'),
  v.literal('transcribing'),
  v.literal('ready'),
  v.literal('failed'),
)

export default defineSchema({
  listeningSessions: defineTable({
    // Clerk user id (`sub` of the token): the only owner of the session.
    userId: v.string(),
    status: sessionStatus,
    audioUrl: v.optional(v.string()),
    audioPathname: v.optional(v.string()),
    audioContentType: v.optional(v.string()),
    audioSizeBytes: v.optional(v.number()),
    durationMs: v.optional(v.number()),
    createdAt: v.number(),
    updatedAt: v.number(),
  })
    .index('by_user', ['userId'])
    // `attachedAudio` (sweepOrphanAudio): is this blob some session's audio?
    .index('by_audio_pathname', ['audioPathname'])
    .index('by_audio_url', ['audioUrl']),

  // Optional per-user limits; a user without a row may record with the global limits.
  entitlements: defineTable({
    userId: v.string(),
    canRecord: v.boolean(),
    maxRecordingMs: v.optional(v.number()),
    maxUploadBytes: v.optional(v.number()),
  }).index('by_user', ['userId']),
})
