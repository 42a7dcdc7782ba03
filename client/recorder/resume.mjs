// The recordings a browser journaled and did not finish: list them for this user, drop one, or
// finish them all (`resumeSessionUploads()`, on the next page load). A session a tab is recording
// (`active` here, or another tab's lock) is left alone. docs/recorder.md.
import { SessionAudioUploadError } from '../errors.mjs'
import { isFinalRefusal as isFinal } from '../route.mjs'
import { belongsTo, whoFor } from '../user.mjs'
import { deliver } from './deliver.mjs'
import { openJournal } from './journal.mjs'

/** Sessions this page is recording or finishing: resume leaves them alone. */
export const active = new Set()

/** Calls an app's callback; what it throws is the app's problem, never the recording's. */
export function safely(fn, ...args) {
  try {
    fn?.(...args)
  } catch (err) {
    globalThis.console?.error?.('session-audio recorder: a callback threw', err)
  }
}

export const dbOptions = (dbName) => (dbName ? { dbName } : {})

/** Run `fn` with the caller's journal, or one opened for it and closed after. */
async function withJournal(given, fn, dbName) {
  const journal = given ?? (await openJournal(dbOptions(dbName)))
  try {
    return await fn(journal)
  } finally {
    if (!given) journal.close()
  }
}

/**
 * Recordings this browser journaled for this user and did not finish (not those this page is
 * recording). The user is `userId`, else the one the credentials name (client/user.mjs); journals
 * recorded without a user are everyone's.
 */
export async function pendingSessionUploads({ journal, dbName, userId, headers } = {}) {
  const user = await whoFor(userId, headers)
  return withJournal(
    journal,
    async (j) =>
      (await j.list())
        .filter((r) => !active.has(r.sessionId) && belongsTo(r.meta, user))
        .map((r) => ({
          sessionId: r.sessionId,
          bytes: r.bytes,
          chunkCount: r.chunkCount,
          recordedMs: r.recordedMs ?? r.meta.recordedMs ?? 0,
          startedAt: r.meta.startedAt,
          status: r.meta.status,
          ...(r.meta.userId ? { userId: r.meta.userId } : {}),
          ...(r.meta.refusal ? { refusal: r.meta.refusal } : {}),
        })),
    dbName,
  )
}

/** Hold the session's lock (a tab recording it holds it) while `fn` runs; null when it is held. */
async function whileUnlocked(sessionId, fn) {
  if (active.has(sessionId)) return null
  if (!globalThis.navigator?.locks) return fn()
  return navigator.locks.request(`session-audio:${sessionId}`, { ifAvailable: true }, (lock) => (lock ? fn() : null))
}

/** Drop one journaled recording (its audio is gone from this browser); not one a tab is recording. */
export async function discardSessionUpload(sessionId, { journal, dbName } = {}) {
  return withJournal(
    journal,
    async (j) => {
      const done = await whileUnlocked(sessionId, async () => {
        await j.remove(sessionId)
        return true
      })
      if (!done) {
        const err = new Error(`Session ${sessionId} is being recorded in this or another tab: stop it there first.`)
        err.code = 'recording_in_progress'
        throw err
      }
    },
    dbName,
  )
}

/**
 * Finish every recording this browser journaled and did not finish: finalise it from the journal
 * up to its last whole element, upload what is missing (reusing the parts already stored while
 * the multipart upload is still valid, else starting again from the journal), and complete it.
 * A recording a tab is still recording is left alone (its lock is held), so is another user's
 * (`userId`, else the user the credentials name: client/user.mjs), and one the route refused for
 * good is reported again, not resent (`discardSessionUpload` drops it).
 * Resolves with one outcome per recording: `{ sessionId, result }` or `{ sessionId, error }`.
 */
export async function resumeSessionUploads({ headers = {}, journal: given, dbName, userId, onProgress, onError } = {}) {
  const user = await whoFor(userId, headers)
  return withJournal(
    given,
    async (journal) => {
      const outcomes = []
      for (const { sessionId, meta: listed } of await journal.list()) {
        // Another user's recording: not theirs to send, nor to have refused. Left as it is.
        if (!belongsTo(listed, user)) continue
        const outcome = await whileUnlocked(sessionId, async () => {
          // Read again under the lock: the list may be minutes old by now.
          const entry = await journal.get(sessionId)
          if (!entry || entry.bytes === 0 || !belongsTo(entry.meta, user)) return null
          const { meta, bytes } = entry
          if (meta.status === 'refused' && meta.refusal) {
            const { status, code, message, final } = meta.refusal
            const refusal = new SessionAudioUploadError(status, code, message, { final })
            // Kept as refused by an earlier version that took an outage, a missing upload or
            // another user's page for a final answer: tried again like any pending recording.
            if (isFinal(refusal)) return { sessionId, error: refusal }
          }
          active.add(sessionId)
          try {
            let uploadedBytes = 0
            const result = await deliver({
              journal,
              sessionId,
              meta,
              bytes,
              stream: null,
              headers,
              onUploaded: (n) => {
                uploadedBytes += n
                safely(onProgress, { sessionId, uploadedBytes, journaledBytes: bytes })
              },
              onError: (err) => safely(onError, err),
            }).catch(async (err) => {
              // The multipart upload expired: once more, from the journal.
              if (err?.code !== 'multipart_upload_not_found') throw err
              await journal.setMeta(sessionId, { upload: null }).catch(() => {})
              return deliver({ journal, sessionId, meta: { ...meta, upload: null }, bytes, stream: null, headers })
            })
            return { sessionId, result }
          } catch (error) {
            return { sessionId, error }
          } finally {
            active.delete(sessionId)
          }
        })
        if (outcome) outcomes.push(outcome)
      }
      return outcomes
    },
    dbName,
  )
}
