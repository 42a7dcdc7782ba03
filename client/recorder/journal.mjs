// session-audio/client journal: every recorded chunk goes to IndexedDB before anything else happens
// to it, so a reload, a crashed tab or a closed laptop lid loses at most the chunk being recorded.
// Plain browser ES module, no dependencies. docs/journal.md says where journals live and how to clear them.
//
// Database `session-audio` (configurable), version 1:
//   recordings  key sessionId        → { sessionId, meta, chunkCount, bytes, recordedMs?, createdAt }
//   chunks      key [sessionId, seq] → { sessionId, seq, start, size, blob | bytes, recordedMs? }
//               index byStart on [sessionId, start]: `read` finds the chunks of a byte range
//               without touching the others.
// Chunks are stored as Blobs (`blob`) where the browser takes them: browsers keep IndexedDB Blobs on
// disk, and a Blob read back is a handle, so reading a part never copies the recording into memory.
// Where it refuses them (WebKit in an ephemeral session, as Safari's private browsing: "Error
// preparing Blob/File data to be stored in object store"), as ArrayBuffers (`bytes`). `openJournal`
// finds out which with one aborted write; `read` takes either form (a journal can hold both).
import {
  DB_VERSION,
  RECORDINGS,
  CHUNKS,
  BY_START,
  JournalError,
  supportsDurability,
  unavailable,
  quotaExceeded,
  failed,
  openError,
  probeBlobStorage,
  assemble,
  checkSessionId,
  checkObject,
  toValue,
  sessionChunks,
} from './journal-support.mjs'

export { JournalError }

/**
 * Open (creating on first use) the journal database. Rejects with JournalError `journal_unavailable` when
 * this context has no IndexedDB or the browser refuses to open it (private mode, storage disabled).
 * `onClose(error)` is called once if the database is closed under the journal (another page upgraded it,
 * site data was cleared): every later call rejects with that `journal_closed` error.
 * `valueFormat` ('blob' | 'arraybuffer') skips the check of what the browser stores chunks as.
 */
export async function openJournal({ dbName = 'session-audio', onClose, valueFormat } = {}) {
  if (valueFormat !== undefined && valueFormat !== 'blob' && valueFormat !== 'arraybuffer')
    throw failed(`valueFormat must be 'blob' or 'arraybuffer', got ${String(valueFormat)}`)
  let factory
  try {
    factory = globalThis.indexedDB
  } catch (error) {
    // Some browsers throw SecurityError on the mere access (opaque origins, storage blocked).
    throw unavailable(dbName, 'IndexedDB is blocked in this browser context', error)
  }
  if (!factory) throw unavailable(dbName, 'this browser context has no IndexedDB')
  const db = await new Promise((resolve, reject) => {
    let settled = false
    const refuse = (error) => {
      if (!settled) reject(error)
      settled = true
    }
    let request
    try {
      request = factory.open(dbName, DB_VERSION)
    } catch (error) {
      refuse(openError(dbName, error))
      return
    }
    request.onupgradeneeded = () => {
      const db = request.result
      if (!db.objectStoreNames.contains(RECORDINGS)) db.createObjectStore(RECORDINGS, { keyPath: 'sessionId' })
      if (!db.objectStoreNames.contains(CHUNKS))
        db.createObjectStore(CHUNKS, { keyPath: ['sessionId', 'seq'] }).createIndex(BY_START, ['sessionId', 'start'])
    }
    request.onsuccess = () => {
      // Opened after we gave up on a blocked open: nobody holds this connection, so close it.
      if (settled) request.result.close()
      else resolve(request.result)
      settled = true
    }
    request.onerror = () => refuse(openError(dbName, request.error))
    // Only an upgrade can be blocked, by another tab holding an older version open.
    request.onblocked = () =>
      refuse(unavailable(dbName, `another tab holds an older version of "${dbName}" open; close it and reload`))
  })
  const format = valueFormat ?? (await probeBlobStorage(db))
  return new Journal(db, dbName, onClose, format)
}

class Journal {
  #db
  #onClose
  /** The JournalError every call rejects with once the database is closed; null while open. */
  #closed = null
  /** Per session: the tail of its queue of calls, so they run in call order. */
  #queues = new Map()

  constructor(db, dbName, onClose, valueFormat) {
    this.#db = db
    this.#onClose = onClose
    this.dbName = dbName
    /** What chunks are stored as: 'blob' where the browser takes Blobs, else 'arraybuffer'. */
    this.valueFormat = valueFormat
    /** What writes ask for: 'strict' (flushed to disk before they resolve) where the browser supports it. */
    this.durability = supportsDurability() ? 'strict' : 'default'
    // Another page asks for a newer version: let it have the database (it waits until we close) and
    // refuse from now on, rather than block it forever.
    db.onversionchange = (event) => {
      this.#shut(
        event.newVersion === null
          ? 'another page deleted the journal database'
          : 'another page opened the journal database with a newer version, so this page closed it',
      )
      db.close()
    }
    // The browser closed the connection itself (site data cleared, storage failure).
    db.onclose = () => this.#shut('the browser closed the journal database (site data cleared or storage failure)')
  }

  /** Refuse every later call; `notify`: tell onClose (the database was closed under us, not by close()). */
  #shut(why, notify = true) {
    if (this.#closed) return
    this.#closed = new JournalError(
      'journal_closed',
      `The recording journal is closed: ${why}. Open it again with openJournal() (reload the page).`,
    )
    if (notify && this.#onClose) this.#onClose(this.#closed)
  }

  #map(error) {
    if (error instanceof JournalError) return error
    const name = error && error.name
    if (name === 'QuotaExceededError') return quotaExceeded(this.dbName, error)
    if (this.#closed) return this.#closed
    if (name === 'InvalidStateError' || name === 'AbortError')
      // AbortError is what the browser aborts transactions with when it force-closes the database
      // (the close event comes after); InvalidStateError when a transaction is opened on a closed one.
      return new JournalError(
        'journal_closed',
        `The recording journal's database was closed while in use (${name}: ${error.message}). ` +
          `Open it again with openJournal() (reload the page).`,
        { cause: error },
      )
    const what = error ? `${name}: ${error.message}` : 'aborted without a reason'
    return failed(`IndexedDB refused the journal operation (${what}).`, error)
  }

  /**
   * One transaction over `stores`. `body(stores, on, ok, fail)` issues requests; `on(request, fn)` runs fn
   * with the result (an exception in it aborts); `ok(value)` sets what the promise resolves with once the
   * transaction completes; `fail(error)` aborts and the promise rejects with it.
   */
  #run(storeNames, mode, body) {
    return new Promise((resolve, reject) => {
      if (this.#closed) return reject(this.#closed)
      let tx
      try {
        tx =
          mode === 'readwrite' && this.durability === 'strict'
            ? this.#db.transaction(storeNames, mode, { durability: 'strict' })
            : this.#db.transaction(storeNames, mode)
      } catch (error) {
        return reject(this.#map(error))
      }
      let result
      let failure = null
      const fail = (error) => {
        failure ??= error
        // abort() throws only when the transaction already finished; then onabort/oncomplete reports it.
        try {
          tx.abort()
        } catch {}
      }
      const on = (request, fn) => {
        request.onsuccess = () => {
          try {
            fn(request.result)
          } catch (error) {
            fail(error)
          }
        }
      }
      tx.oncomplete = () => resolve(result)
      // Request errors bubble here and then abort the transaction: onabort reports the first reason.
      tx.onabort = () => reject(this.#map(failure ?? tx.error))
      try {
        const stores = storeNames.map((name) => tx.objectStore(name))
        body(stores, on, (value) => (result = value), fail)
      } catch (error) {
        fail(error)
      }
    })
  }

  /** Run `job` after every earlier call on `sessionId` settled: appends stay in seq order, offsets consistent. */
  #enqueue(sessionId, job) {
    const previous = this.#queues.get(sessionId)
    // Idle: start now, so the transaction exists before the caller's next statement (a close() right
    // after an append lets that append commit, as IndexedDB does for transactions already open).
    const run = previous ? previous.then(job) : job()
    // The queue's tail must not reject (the next call runs either way); the caller gets `run` itself.
    // Registered before the caller's own handlers, so the queue is idle again when the caller resumes.
    const settle = () => {
      if (this.#queues.get(sessionId) === tail) this.#queues.delete(sessionId)
    }
    const tail = run.then(settle, settle)
    this.#queues.set(sessionId, tail)
    return run
  }

  /**
   * `job()` queued behind the session's earlier calls, once `sessionId` and `check()` (the other
   * arguments) passed: a bad argument rejects the call, as every failure of the journal does.
   */
  #queued(sessionId, check, job) {
    try {
      checkSessionId(sessionId)
      check?.()
    } catch (error) {
      return Promise.reject(error)
    }
    return this.#enqueue(sessionId, job)
  }

  /** Start the journal of a recording. Throws if one exists for `sessionId`, unless `{ replace: true }`. */
  begin(sessionId, meta, { replace = false } = {}) {
    return this.#queued(
      sessionId,
      () => checkObject(meta, 'meta'),
      () =>
        this.#run([RECORDINGS, CHUNKS], 'readwrite', ([recordings, chunks], on, ok, fail) => {
          on(recordings.get(sessionId), (existing) => {
            if (existing && !replace)
              return fail(
                failed(
                  `A journal for session ${sessionId} already exists (${existing.chunkCount} chunks, ${existing.bytes} bytes): ` +
                    `resume it, remove it, or begin with { replace: true }.`,
                ),
              )
            if (existing) chunks.delete(sessionChunks(sessionId))
            recordings.put({ sessionId, meta, chunkCount: 0, bytes: 0, createdAt: Date.now() })
          })
        }),
    )
  }

  /**
   * Journal chunk `seq` (0, 1, 2, … with no gap) of a recording: the chunk and the recording's counters are
   * written in one transaction, flushed ('strict') where the browser allows, and this resolves once committed.
   */
  append(sessionId, seq, bytes, info) {
    let given
    const check = () => {
      if (!Number.isSafeInteger(seq) || seq < 0) throw failed(`seq must be an integer ≥ 0, got ${seq}`)
      given = toValue(bytes, this.valueFormat)
    }
    const recordedMs = info && Number.isFinite(info.recordedMs) ? info.recordedMs : undefined
    return this.#queued(sessionId, check, async () => {
      // Read before the transaction opens: it would commit while we await.
      let value = given
      if (this.valueFormat === 'arraybuffer' && value instanceof Blob) {
        try {
          value = await value.arrayBuffer()
        } catch (error) {
          throw failed(`The chunk could not be read (${error?.name}: ${error?.message}).`, error)
        }
      }
      const size = value instanceof ArrayBuffer ? value.byteLength : value.size
      return this.#run([RECORDINGS, CHUNKS], 'readwrite', ([recordings, chunks], on, ok, fail) => {
        on(recordings.get(sessionId), (recording) => {
          if (!recording) return fail(failed(`No journal for session ${sessionId}: call begin() before append().`))
          if (seq !== recording.chunkCount)
            return fail(
              failed(
                seq < recording.chunkCount
                  ? `Chunk ${seq} of session ${sessionId} is already journaled (it holds ${recording.chunkCount} chunks): a duplicate append.`
                  : `Chunk ${seq} of session ${sessionId} would leave a gap: the journal holds ${recording.chunkCount} chunks, so the next is ${recording.chunkCount}.`,
              ),
            )
          const chunk = { sessionId, seq, start: recording.bytes, size }
          if (value instanceof ArrayBuffer) chunk.bytes = value
          else chunk.blob = value
          if (recordedMs !== undefined) chunk.recordedMs = recordedMs
          // add, not put: a key that exists is a ConstraintError, never an overwrite.
          chunks.add(chunk)
          const next = { ...recording, chunkCount: seq + 1, bytes: recording.bytes + size }
          if (recordedMs !== undefined) next.recordedMs = recordedMs
          recordings.put(next)
        })
      })
    })
  }

  /** Merge `patch` into the recording's meta (shallow): upload state, finaliser state, status. */
  setMeta(sessionId, patch) {
    return this.#queued(
      sessionId,
      () => checkObject(patch, 'patch'),
      () =>
        this.#run([RECORDINGS], 'readwrite', ([recordings], on, ok, fail) => {
          on(recordings.get(sessionId), (recording) => {
            if (!recording) return fail(failed(`No journal for session ${sessionId}: call begin() before setMeta().`))
            recordings.put({ ...recording, meta: { ...recording.meta, ...patch } })
          })
        }),
    )
  }

  /** The recording's journal `{ sessionId, meta, chunkCount, bytes, recordedMs?, createdAt }`, or null. */
  get(sessionId) {
    return this.#queued(sessionId, null, () =>
      this.#run([RECORDINGS], 'readonly', ([recordings], on, ok) => {
        on(recordings.get(sessionId), (recording) => ok(recording ?? null))
      }),
    )
  }

  /**
   * Bytes [start, end) of the recording (its chunks concatenated) as a Blob made of slices of the stored
   * chunk Blobs. Only the chunks overlapping the range are looked up.
   */
  read(sessionId, start, end) {
    const check = () => {
      if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start)
        throw failed(`read needs integers 0 ≤ start ≤ end, got start ${start}, end ${end}`)
    }
    return this.#queued(sessionId, check, () =>
      this.#run([RECORDINGS, CHUNKS], 'readonly', ([recordings, chunks], on, ok, fail) => {
        on(recordings.get(sessionId), (recording) => {
          if (!recording) return fail(failed(`No journal for session ${sessionId}.`))
          if (end > recording.bytes)
            return fail(
              failed(`Bytes ${start}..${end} are beyond the journal of ${sessionId} (${recording.bytes} bytes).`),
            )
          if (start === end) return ok(new Blob([]))
          const byStart = chunks.index(BY_START)
          // The chunk holding byte `start` is the last one starting at or before it.
          on(byStart.openKeyCursor(IDBKeyRange.bound([sessionId, 0], [sessionId, start]), 'prev'), (cursor) => {
            const from = cursor ? cursor.key[1] : 0
            on(byStart.getAll(IDBKeyRange.bound([sessionId, from], [sessionId, end], false, true)), (found) => {
              const blob = assemble(found, start, end)
              if (!blob)
                return fail(
                  failed(`The journal of ${sessionId} is inconsistent: its chunks do not cover ${start}..${end}.`),
                )
              ok(blob)
            })
          })
        })
      }),
    )
  }

  /** Every journaled recording (the unfinished ones are what a recorder resumes). */
  list() {
    return this.#run([RECORDINGS], 'readonly', ([recordings], on, ok) => {
      on(recordings.getAll(), ok)
    })
  }

  /** Delete the recording's meta and every chunk, in one transaction. */
  remove(sessionId) {
    return this.#queued(sessionId, null, () =>
      this.#run([RECORDINGS, CHUNKS], 'readwrite', ([recordings, chunks]) => {
        recordings.delete(sessionId)
        chunks.delete(sessionChunks(sessionId))
      }),
    )
  }

  /** The origin's storage `{ usage, quota }` in bytes (navigator.storage.estimate()), or null where unknown. */
  async estimate() {
    if (this.#closed) throw this.#closed
    const storage = globalThis.navigator && globalThis.navigator.storage
    if (!storage || typeof storage.estimate !== 'function') return null
    const { usage, quota } = await storage.estimate()
    return { usage, quota }
  }

  /** Ask the browser not to evict this site's storage under pressure (navigator.storage.persist()). */
  async persist() {
    if (this.#closed) throw this.#closed
    const storage = globalThis.navigator && globalThis.navigator.storage
    if (!storage || typeof storage.persist !== 'function') return false
    return storage.persist()
  }

  /** Close the database; every later call rejects with journal_closed. */
  close() {
    this.#shut('close() was called', false)
    this.#db.close()
  }
}
