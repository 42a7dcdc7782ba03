'use client'
// The whole demo: create a session, record with the package's recorder (`createSessionRecorder`:
// journaled to IndexedDB, uploaded to Blob while recording, seekable when stored) or pick a file
// (`uploadSessionAudio`), then play it back through the GET route (Range requests: seeking works).
// On load it finishes recordings a reload or a crash interrupted (`resumeSessionUploads`).
// Nothing here touches the audio itself: the package finalises WebM (Duration and Cues).
import { useEffect, useRef, useState } from 'react'

/**
 * `session-audio/client`, loaded on first use. With the local stack, `localBlobApi` says where its
 * Blob store is. The client reads NEXT_PUBLIC_VERCEL_BLOB_API_URL, which Next inlines only when it
 * is set at build time, and the store's port is known only when the app starts; so it is set here,
 * before the client loads, and the recorder is also given it as `blobApiUrl` (its journal keeps it
 * for a resume). On Vercel there is nothing to set: the default is Vercel Blob.
 */
async function blobClient(localBlobApi?: string) {
  if (localBlobApi) process.env['NEXT_PUBLIC_VERCEL_BLOB_API_URL'] = localBlobApi
  return import('session-audio/client')
}

type Session = { _id: string; status: string; durationMs?: number; contentType?: string }
type Client = Awaited<ReturnType<typeof blobClient>>
type Recorder = ReturnType<Client['createSessionRecorder']>
type Result = Awaited<ReturnType<Client['uploadSessionAudio']>>

/** `m:ss.t` */
const formatMs = (ms: number) => `${Math.floor(ms / 60_000)}:${((ms % 60_000) / 1000).toFixed(1).padStart(4, '0')}`

/** The route's answer, in the words the page (and the e2e test) show. */
const uploadedText = (r: Result) => `uploaded ${r.sizeBytes} bytes (${r.contentType}, ${r.durationMs} ms)`

/** An error with its code: the route's (`409 session_not_recording`), the journal's, or as it is. */
function describeError(client: Client, e: unknown): string {
  if (e instanceof client.SessionAudioUploadError) return `${e.status} ${e.code}: ${e.message}`
  if (e instanceof client.JournalError) return `${e.code}: ${e.message}`
  return String(e)
}

/**
 * One resume per page load, whatever React does with effects: recordings a reload or a crash
 * interrupted, finished from this browser's journal (IndexedDB). Only this user's: another person
 * signed in on this browser finds theirs when they come back.
 */
let resuming: Promise<{ text: string; last: Result | null }> | null = null
function resumeOnce(localBlobApi: string | undefined, userId: string, onText: (text: string) => void) {
  resuming ??= (async () => {
    const client = await blobClient(localBlobApi)
    try {
      const pending = await client.pendingSessionUploads({ userId })
      if (pending.length === 0) return { text: 'nothing to resume', last: null }
      onText(
        `resuming ${pending.length} recording${pending.length === 1 ? '' : 's'}: ` +
          pending.map((p) => `${p.sessionId} (${(p.recordedMs / 1000).toFixed(1)} s)`).join(', ') +
          '…',
      )
      const outcomes = await client.resumeSessionUploads({ userId })
      if (outcomes.length === 0) return { text: 'nothing to resume', last: null }
      const lines = outcomes.map((o) =>
        o.result ? `${o.sessionId} → ${o.result.status}` : `${o.sessionId} failed: ${describeError(client, o.error)}`,
      )
      const done = outcomes.filter((o) => o.result).length
      const last = outcomes.findLast((o) => o.result)?.result ?? null
      return { text: `resumed ${done} recording${done === 1 ? '' : 's'}: ${lines.join('; ')}`, last }
    } catch (e) {
      return { text: `could not resume: ${describeError(client, e)}`, last: null }
    }
  })()
  return resuming
}

export function Demo({
  userId,
  signOutUrl,
  localBlobApi,
}: {
  userId: string
  signOutUrl: string
  localBlobApi?: string
}) {
  const [sessionId, setSessionId] = useState<string | null>(null)
  const [status, setStatus] = useState('')
  const [message, setMessage] = useState('')
  const [resume, setResume] = useState('looking for recordings to resume…')
  const [journalNote, setJournalNote] = useState('')
  /** Where the recorder keeps chunks: 'blob' or 'arraybuffer' (IndexedDB), or 'memory'. */
  const [journalMode, setJournalMode] = useState('')
  const [recorderState, setRecorderState] = useState<string | null>(null)
  const [recordedMs, setRecordedMs] = useState(0)
  const [uploadedBytes, setUploadedBytes] = useState(0)
  const [journaledBytes, setJournaledBytes] = useState(0)
  const [uploaded, setUploaded] = useState(0)
  const [percent, setPercent] = useState<number | null>(null)
  const [sessions, setSessions] = useState<Session[]>([])
  const recorder = useRef<Recorder | null>(null)
  /** A session is on the page (so a resumed recording does not replace it). */
  const opened = useRef(false)

  async function refresh() {
    const res = await fetch('/api/listening-sessions')
    if (res.ok) setSessions((await res.json()).sessions)
  }
  useEffect(() => {
    void refresh()
    void resumeOnce(localBlobApi, userId, setResume).then(({ text, last }) => {
      setResume(text)
      // Show the resumed recording (the last one) unless a session was opened meanwhile.
      if (last && !opened.current) {
        opened.current = true
        setSessionId(last.sessionId)
        show(last)
      }
      void refresh()
    })
  }, [])

  async function newSession() {
    const res = await fetch('/api/listening-sessions', { method: 'POST' })
    const body = await res.json()
    if (!res.ok) return setMessage(`create failed: ${res.status} ${JSON.stringify(body)}`)
    opened.current = true
    setSessionId(body.sessionId)
    setStatus(body.status)
    setMessage('')
    setUploaded(0)
    setPercent(null)
    setRecorderState(null)
    recorder.current = null
    void refresh()
  }

  /**
   * Record with the package's recorder: every chunk goes to IndexedDB first, and parts go up to
   * Blob while recording, so a reload or a crash loses at most the last second (the next page load
   * resumes it) and Stop leaves only the tail to send.
   */
  async function startRecording() {
    if (!sessionId) return
    const client = await blobClient(localBlobApi)
    const options = {
      // The local stack's Blob store (on Vercel: unset, the recorder uses Vercel Blob).
      blobApiUrl: localBlobApi,
      // Whose recording: only their page resumes it, whoever else uses this browser.
      userId,
      onStateChange: setRecorderState,
      onProgress: (p: { recordedMs: number; uploadedBytes: number; journaledBytes: number }) => {
        setRecordedMs(p.recordedMs)
        setUploadedBytes(p.uploadedBytes)
        setJournaledBytes(p.journaledBytes)
      },
      onError: (e: Error & { recordingContinues?: boolean }) => {
        setMessage(`recorder: ${describeError(client, e)}`)
        // The journal stopped taking writes mid-recording: the recorder goes on in memory.
        if (e.recordingContinues) {
          setJournalMode('memory')
          setJournalNote(
            `${(e as { code?: string }).code}: the journal stopped taking writes, so the recording goes on in memory ` +
              'and its parts still upload; a reload or a crash now loses what is not uploaded yet.',
          )
        }
      },
    }
    setRecordedMs(0)
    setUploadedBytes(0)
    setJournaledBytes(0)
    setJournalNote('')
    setJournalMode('')
    setMessage('')
    let rec = client.createSessionRecorder(sessionId, options)
    recorder.current = rec
    try {
      await rec.start()
      setJournalMode(rec.stats.journal ?? '')
    } catch (e) {
      if (!(e instanceof client.JournalError && e.code === 'journal_unavailable'))
        return setMessage(`recording failed: ${describeError(client, e)}`)
      // No IndexedDB here (some private modes): the documented fallback keeps the audio in memory.
      setJournalNote(
        `${e.code}: this browser cannot keep the recording on disk, so it is kept in memory; ` +
          'a reload or a crash before Stop loses it.',
      )
      rec = client.createSessionRecorder(sessionId, { ...options, journal: 'memory' })
      recorder.current = rec
      try {
        await rec.start()
        setJournalMode('memory')
      } catch (e2) {
        return setMessage(`recording failed: ${describeError(client, e2)}`)
      }
    }
  }

  async function stopRecording() {
    const rec = recorder.current
    if (!rec || !sessionId) return
    const client = await blobClient(localBlobApi)
    setMessage('sending the rest…')
    try {
      show(await rec.stop())
    } catch (e) {
      setMessage(`upload refused: ${describeError(client, e)}`)
    }
    void refresh()
  }

  function show(body: Result) {
    setStatus(body.status)
    setUploaded((n) => n + 1)
    setMessage(uploadedText(body))
  }

  async function pickFile(file: File) {
    const url = URL.createObjectURL(file)
    const probe = new Audio(url)
    const durationMs = await new Promise<number>((resolve) => {
      probe.onloadedmetadata = () => resolve(Number.isFinite(probe.duration) ? probe.duration * 1000 : 0)
      probe.onerror = () => resolve(0)
    })
    URL.revokeObjectURL(url)
    await upload(file, durationMs)
  }

  async function upload(blob: Blob, durationMs: number) {
    if (!sessionId) return
    setMessage(`uploading ${blob.size} bytes…`)
    setPercent(0)
    const client = await blobClient(localBlobApi)
    try {
      show(
        await client.uploadSessionAudio(sessionId, blob, {
          durationMs: Math.round(durationMs),
          contentType: blob.type || 'audio/webm',
          onProgress: ({ percentage }) => setPercent(percentage),
        }),
      )
    } catch (e) {
      setMessage(`upload refused: ${describeError(client, e)}`)
    }
    void refresh()
  }

  // From Record until the route answers Stop (the recorder's own states).
  const recording =
    recorderState !== null && ['starting', 'recording', 'paused', 'stopping', 'uploading'].includes(recorderState)
  // Played from the Pages API route next to the upload route: its answer keeps Content-Length, which
  // WebKit needs to seek (pages/api/listening-sessions/[sessionId]/playback.ts says why).
  const src = sessionId ? `/api/listening-sessions/${sessionId}/playback?v=${uploaded}` : ''
  return (
    <section>
      <p>
        Signed in as <b id="user">{userId}</b> ·{' '}
        <a id="sign-out" href={`${signOutUrl}?redirect_url=${encodeURIComponent(globalThis.location?.href ?? '/')}`}>
          sign out
        </a>
      </p>
      <p>
        <button id="new-session" onClick={newSession} disabled={recording}>
          New listening session
        </button>
      </p>
      {sessionId && (
        <div>
          <p>
            Session <code id="session-id">{sessionId}</code>: <b id="status">{status}</b>
          </p>
          {status === 'recording' && (
            <p>
              {recording ? (
                <button
                  id="stop"
                  onClick={stopRecording}
                  disabled={recorderState !== 'recording' && recorderState !== 'paused'}
                >
                  Stop and upload
                </button>
              ) : (
                <button id="record" onClick={startRecording}>
                  Record from the microphone
                </button>
              )}{' '}
              or{' '}
              <input
                id="file"
                type="file"
                accept="audio/*"
                onChange={(e) => e.target.files?.[0] && pickFile(e.target.files[0])}
              />
            </p>
          )}
          {recorderState && (
            <p>
              Recorder: <b id="recorder-state">{recorderState}</b> ·{' '}
              <span id="recorded" data-ms={recordedMs}>
                {formatMs(recordedMs)}
              </span>{' '}
              recorded · <span id="uploaded">{uploadedBytes}</span> bytes uploaded (
              <span id="journaled">{journaledBytes}</span> bytes journaled, journal:{' '}
              <span id="journal-mode">{journalMode}</span>)
            </p>
          )}
          {journalNote && <p id="journal-note">{journalNote}</p>}
          {percent !== null && (
            <p>
              <progress id="progress" max={100} value={percent} /> <span id="percent">{Math.round(percent)} %</span>
            </p>
          )}
          {/* preload="auto": WebKitGTK seeks in a fragmented MP4 only when it buffers the file (docs/mp4-finalise.md) */}
          {uploaded > 0 && <audio id="player" controls preload="auto" src={src} style={{ width: '100%' }} />}
        </div>
      )}
      <p id="message">{message}</p>
      <p>
        Interrupted recordings: <span id="resume">{resume}</span>
      </p>
      <h2>Your sessions</h2>
      <ul id="sessions">
        {sessions.map((s) => (
          <li key={s._id}>
            <code>{s._id}</code> {s.status}
            {s.durationMs ? ` · ${(s.durationMs / 1000).toFixed(1)} s` : ''}
          </li>
        ))}
      </ul>
    </section>
  )
}
