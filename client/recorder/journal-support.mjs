// What the recording journal (client/recorder/journal.mjs) is built from: its database layout, the
// JournalError it rejects with and the messages that say how to clear a journal, the one-write
// probe of whether the browser stores Blobs, and the pure helpers that turn chunks into the bytes
// of a range. Plain browser ES module, no dependencies.

export const DB_VERSION = 1
export const RECORDINGS = 'recordings'
export const CHUNKS = 'chunks'
export const BY_START = 'byStart'

/** Why the journal refused: `code` is journal_unavailable, journal_quota_exceeded, journal_closed or journal_failed. */
export class JournalError extends Error {
  constructor(code, message, options) {
    super(message, options)
    this.name = 'JournalError'
    this.code = code
  }
}

/** Whether this browser takes `{ durability }` on transactions (Chromium and Safari do). */
export function supportsDurability() {
  return typeof IDBTransaction !== 'undefined' && 'durability' in IDBTransaction.prototype
}

export const clearHint = (dbName) =>
  `Journals are cleared with discardSessionUpload(sessionId) (pendingSessionUploads() lists them), ` +
  `or by hand in DevTools → Application → IndexedDB → ${dbName}.`

export function unavailable(dbName, why, cause) {
  return new JournalError(
    'journal_unavailable',
    `The recording journal cannot be used: ${why}. Recordings are not protected against a reload or a crash ` +
      `in this browser context (private browsing often disables or limits IndexedDB); ` +
      `record in a normal window, or upload at stop without a journal.`,
    cause === undefined ? undefined : { cause },
  )
}

export function quotaExceeded(dbName, cause) {
  return new JournalError(
    'journal_quota_exceeded',
    `The browser's storage quota for this site is full, so the journal could not store this write ` +
      `(nothing of it was written; what was journaled before is intact). Journaled recordings still waiting to upload and ` +
      `any other data this site stores fill the quota. ${clearHint(dbName)}`,
    { cause },
  )
}

export function failed(message, cause) {
  return new JournalError('journal_failed', message, cause === undefined ? undefined : { cause })
}

/** The error `open` failed with, as a JournalError. */
export function openError(dbName, error) {
  if (error && error.name === 'QuotaExceededError') return quotaExceeded(dbName, error)
  if (error && error.name === 'VersionError')
    return unavailable(dbName, `the database "${dbName}" was created by a newer version of session-audio`, error)
  const what = error ? `${error.name}: ${error.message}` : 'no reason given'
  return unavailable(dbName, `opening IndexedDB database "${dbName}" failed (${what})`, error)
}

/** The probe's key: never a session's (a sessionId is a non-empty string that the recorder chose). */
export const PROBE_KEY = ['\u0000session-audio-probe', 0]

/**
 * Whether this browser stores Blobs in IndexedDB here: one Blob written in a transaction that is then
 * aborted (nothing is kept). 'blob' if the write succeeds, else 'arraybuffer' (WebKit refuses Blobs
 * in an ephemeral session; ArrayBuffers are stored).
 */
export function probeBlobStorage(db) {
  return new Promise((resolve) => {
    let format = 'arraybuffer'
    let tx
    try {
      // As every write: an engine that treats strict writes differently answers for those.
      tx = supportsDurability()
        ? db.transaction([CHUNKS], 'readwrite', { durability: 'strict' })
        : db.transaction([CHUNKS], 'readwrite')
      const request = tx.objectStore(CHUNKS).put({
        sessionId: PROBE_KEY[0],
        seq: PROBE_KEY[1],
        start: 0,
        size: 1,
        blob: new Blob([new Uint8Array(1)]),
      })
      request.onsuccess = () => {
        format = 'blob'
        try {
          tx.abort()
        } catch {}
      }
      request.onerror = (event) => event.preventDefault()
    } catch {
      return resolve(format)
    }
    tx.onabort = () => resolve(format)
    tx.oncomplete = () => resolve(format)
  })
}

/** Bytes [from, to) of a stored chunk, whichever form it was stored in (a Blob, or an ArrayBuffer). */
export function chunkSlice(chunk, from, to) {
  if (chunk.blob !== undefined) return from === 0 && to === chunk.size ? chunk.blob : chunk.blob.slice(from, to)
  return new Uint8Array(chunk.bytes, from, to - from)
}

/** The byte range [start, end) of the stored chunks (sorted by start), as one Blob of slices; null if they do not tile it. */
export function assemble(chunks, start, end) {
  const parts = []
  let at = start
  for (const chunk of chunks) {
    if (chunk.size === 0 || chunk.start + chunk.size <= at) continue
    if (chunk.start > at || at >= end) return null
    const from = at - chunk.start
    const to = Math.min(end, chunk.start + chunk.size) - chunk.start
    parts.push(chunkSlice(chunk, from, to))
    at = chunk.start + to
  }
  return at === end ? new Blob(parts) : null
}

export function checkSessionId(sessionId) {
  if (typeof sessionId !== 'string' || sessionId === '')
    throw failed(`sessionId must be a non-empty string, got ${typeof sessionId}`)
}

export function checkObject(value, what) {
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw failed(`${what} must be a plain object (JSON-able), got ${value === null ? 'null' : typeof value}`)
}

/**
 * The chunk as the journal stores it: a Blob, or (`format` 'arraybuffer') an ArrayBuffer or a Blob
 * to read into one before the write. Bytes given as a buffer are copied now: the caller may reuse
 * its buffer before the queued write runs.
 */
export function toValue(bytes, format) {
  if (typeof Blob !== 'undefined' && bytes instanceof Blob) return bytes
  if (ArrayBuffer.isView(bytes) || bytes instanceof ArrayBuffer) {
    if (format === 'blob') return new Blob([bytes])
    const view = bytes instanceof ArrayBuffer ? new Uint8Array(bytes) : bytes
    return new Uint8Array(view.buffer, view.byteOffset, view.byteLength).slice().buffer
  }
  throw failed(`a chunk must be a Blob or a Uint8Array, got ${bytes === null ? 'null' : typeof bytes}`)
}

/** Every key [sessionId, seq] of one session. */
export const sessionChunks = (sessionId) => IDBKeyRange.bound([sessionId, -Infinity], [sessionId, Infinity])
