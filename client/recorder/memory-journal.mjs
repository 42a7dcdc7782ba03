// The recorder's journals in memory: `createMemoryJournal()`, the documented fallback when IndexedDB
// cannot be used (the `journal: 'memory'` option), and `spillToMemory()`, what a recording goes on
// with when its IndexedDB journal stops taking writes mid-recording. Both keep Blobs (which a
// browser may keep on disk) and answer the same calls as client/recorder/journal.mjs.

/** A journal that keeps chunks in memory: the documented fallback when IndexedDB cannot be used. */
export function createMemoryJournal() {
  const recordings = new Map()
  return {
    kind: 'memory',
    async begin(sessionId, meta) {
      recordings.set(sessionId, { meta: { ...meta }, chunks: [], bytes: 0 })
    },
    async append(sessionId, seq, bytes, info = {}) {
      const r = recordings.get(sessionId)
      const blob = bytes instanceof Blob ? bytes : new Blob([bytes])
      r.chunks.push({ blob, start: r.bytes, size: blob.size })
      r.bytes += blob.size
      if (info.recordedMs !== undefined) r.recordedMs = info.recordedMs
    },
    async setMeta(sessionId, patch) {
      const r = recordings.get(sessionId)
      if (r) Object.assign(r.meta, patch)
    },
    async get(sessionId) {
      const r = recordings.get(sessionId)
      return r
        ? { sessionId, meta: r.meta, chunkCount: r.chunks.length, bytes: r.bytes, recordedMs: r.recordedMs }
        : null
    },
    async read(sessionId, start, end) {
      const r = recordings.get(sessionId)
      const parts = []
      for (const c of r.chunks) {
        if (c.start + c.size <= start || c.start >= end) continue
        parts.push(c.blob.slice(Math.max(0, start - c.start), Math.min(c.size, end - c.start)))
      }
      return new Blob(parts)
    },
    async list() {
      return [...recordings].map(([sessionId, r]) => ({
        sessionId,
        meta: r.meta,
        chunkCount: r.chunks.length,
        bytes: r.bytes,
        recordedMs: r.recordedMs,
      }))
    },
    async remove(sessionId) {
      recordings.delete(sessionId)
    },
    close() {},
  }
}

/**
 * The journal of a recording whose journal stopped taking writes: bytes before `fromByte` stay in
 * `journal` (read from there), every later chunk is kept in memory. Its bookkeeping (the upload's
 * state, the status) still goes to `journal` where it can; a failure there changes nothing.
 */
export function spillToMemory(journal, sessionId, fromByte) {
  const held = []
  let bytes = fromByte
  return {
    kind: 'memory',
    fromByte,
    async append(id, seq, chunk) {
      const blob = chunk instanceof Blob ? chunk : new Blob([chunk])
      held.push({ blob, start: bytes, size: blob.size })
      bytes += blob.size
    },
    async read(id, start, end) {
      const parts = []
      if (start < fromByte) parts.push(await journal.read(id, start, Math.min(end, fromByte)))
      for (const c of held) {
        if (c.start + c.size <= start || c.start >= end) continue
        parts.push(c.blob.slice(Math.max(0, start - c.start), Math.min(c.size, end - c.start)))
      }
      return new Blob(parts)
    },
    setMeta: (id, patch) => journal.setMeta(id, patch).catch(() => {}),
    get: (id) => journal.get(id).catch(() => null),
    list: () => journal.list(),
    remove: (id) => journal.remove(id).catch(() => {}),
    close: () => journal.close?.(),
  }
}
