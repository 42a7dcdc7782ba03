'use client'
// The whole demo: create a session, record (MediaRecorder) or pick a file, upload it straight to
// Blob with `session-audio/client` (any length: the route only mints the token and verifies what
// landed), then play it back through the GET route (Range requests: seeking works).
import { useEffect, useRef, useState } from 'react'

/**
 * `session-audio/client`, loaded on first use. With the local stack, `localBlobApi` says where its
 * Blob store is: `@vercel/blob/client` reads NEXT_PUBLIC_VERCEL_BLOB_API_URL, which Next inlines
 * only when it is set at build time, and the store's port is known only when the app starts. So it
 * is set here, before the SDK loads (it decides how to send bodies when it loads). On Vercel there
 * is nothing to set: the SDK's default is Vercel Blob.
 */
async function blobClient(localBlobApi?: string) {
  if (localBlobApi) process.env['NEXT_PUBLIC_VERCEL_BLOB_API_URL'] = localBlobApi
  return import('session-audio/client')
}

type Session = { _id: string; status: string; durationMs?: number; contentType?: string }

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
  const [recording, setRecording] = useState(false)
  const [uploaded, setUploaded] = useState(0)
  const [percent, setPercent] = useState<number | null>(null)
  const [sessions, setSessions] = useState<Session[]>([])
  const recorder = useRef<MediaRecorder | null>(null)
  const startedAt = useRef(0)

  async function refresh() {
    const res = await fetch('/api/listening-sessions')
    if (res.ok) setSessions((await res.json()).sessions)
  }
  useEffect(() => {
    void refresh()
  }, [])

  async function newSession() {
    const res = await fetch('/api/listening-sessions', { method: 'POST' })
    const body = await res.json()
    if (!res.ok) return setMessage(`create failed: ${res.status} ${JSON.stringify(body)}`)
    setSessionId(body.sessionId)
    setStatus(body.status)
    setMessage('')
    setUploaded(0)
    void refresh()
  }

  async function startRecording() {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true })
    const mimeType = MediaRecorder.isTypeSupported('audio/webm;codecs=opus') ? 'audio/webm;codecs=opus' : ''
    const rec = new MediaRecorder(stream, mimeType ? { mimeType } : undefined)
    const chunks: Blob[] = []
    rec.ondataavailable = (e) => e.data.size && chunks.push(e.data)
    rec.onstop = async () => {
      stream.getTracks().forEach((t) => t.stop())
      const durationMs = performance.now() - startedAt.current
      // uploadSessionAudio finalises MediaRecorder's WebM itself (Duration and Cues: seekable).
      await upload(new Blob(chunks, { type: rec.mimeType }), durationMs)
    }
    recorder.current = rec
    startedAt.current = performance.now()
    rec.start(250)
    setRecording(true)
  }

  function stopRecording() {
    recorder.current?.stop()
    setRecording(false)
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
    const { uploadSessionAudio, SessionAudioUploadError } = await blobClient(localBlobApi)
    try {
      const body = await uploadSessionAudio(sessionId, blob, {
        durationMs: Math.round(durationMs),
        contentType: blob.type || 'audio/webm',
        onProgress: ({ percentage }) => setPercent(percentage),
      })
      setStatus(body.status)
      setUploaded((n) => n + 1)
      setMessage(`uploaded ${body.sizeBytes} bytes (${body.contentType}, ${body.durationMs} ms)`)
    } catch (e) {
      const why = e instanceof SessionAudioUploadError ? `${e.status} ${e.code}: ${e.message}` : String(e)
      setMessage(`upload refused: ${why}`)
    }
    void refresh()
  }

  const src = sessionId ? `/api/listening-sessions/${sessionId}/audio?v=${uploaded}` : ''
  return (
    <section>
      <p>
        Signed in as <b id="user">{userId}</b> ·{' '}
        <a id="sign-out" href={`${signOutUrl}?redirect_url=${encodeURIComponent(globalThis.location?.href ?? '/')}`}>
          sign out
        </a>
      </p>
      <p>
        <button id="new-session" onClick={newSession}>
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
                <button id="stop" onClick={stopRecording}>
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
          {percent !== null && (
            <p>
              <progress id="progress" max={100} value={percent} /> <span id="percent">{Math.round(percent)} %</span>
            </p>
          )}
          {uploaded > 0 && <audio id="player" controls preload="metadata" src={src} style={{ width: '100%' }} />}
        </div>
      )}
      <p id="message">{message}</p>
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
