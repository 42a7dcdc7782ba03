// The completion rule of `session-audio/client`, one for `uploadSessionAudio` and the recorder:
// which refusals are for good, how the `session-audio.complete-upload` event is retried, and the
// one re-send when the route cannot use what was stored (`upload_expired`, `upload_not_found`).
// docs/recorder.md ("Failures") says the same in prose.
import { refusalFromBody, retryAfterMs, SessionAudioUploadError } from './errors.mjs'

/** The route cannot attach the stored blob (too old, or gone): the audio has to go up again. */
const UPLOAD_AGAIN = new Set(['upload_expired', 'upload_not_found'])
/** Never refused for good, whatever an older route's status says. */
const NEVER_FINAL = new Set([...UPLOAD_AGAIN, 'session_not_found'])

/** Whether `err` asks for the audio to be uploaded again (a new grant, a new blob). */
export const uploadAgain = (err) => err instanceof SessionAudioUploadError && UPLOAD_AGAIN.has(err.code)

/**
 * A refusal that trying again will not change. The route says so itself (`final: true`: the
 * recording's bytes, type, size, duration, the user's limits, or the session moved on;
 * `final: false`: an outage, a sign-in, a session this user cannot see). A route that does not say
 * (older versions) and the client's own errors: a 4xx other than 401, 408, 429, and never
 * `upload_expired`, `upload_not_found`, `session_not_found` or `multipart_upload_not_found`.
 */
export function isFinalRefusal(err) {
  if (!(err instanceof SessionAudioUploadError)) return false
  if (typeof err.final === 'boolean') return err.final
  return (
    err.status >= 400 &&
    err.status < 500 &&
    ![401, 408, 429].includes(err.status) &&
    !NEVER_FINAL.has(err.code) &&
    err.code !== 'multipart_upload_not_found'
  )
}

const isAbort = (err) => err?.name === 'AbortError'

/** Headers for the route now (`headers` may be a function: a fresh `Authorization` per request). */
export const headersNow = async (headers) => (typeof headers === 'function' ? await headers() : headers)

/** Attempts of one completion: the first and 4 more, 0.5 s, 1 s, 2 s, 4 s apart (or Retry-After, up to 30 s). */
const ATTEMPTS = 5
const MAX_WAIT_MS = 30_000

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason ?? new DOMException('aborted', 'AbortError'))
    const t = setTimeout(done, ms)
    function done() {
      signal?.removeEventListener('abort', stop)
      resolve()
    }
    function stop() {
      clearTimeout(t)
      reject(signal.reason ?? new DOMException('aborted', 'AbortError'))
    }
    signal?.addEventListener('abort', stop, { once: true })
  })
}

/**
 * Post `session-audio.complete-upload` for the stored `url` and resolve with the route's answer.
 * Retried on network errors, 5xx, 408 and 429 (waiting at least the route's `Retry-After`); any
 * other answer rejects at once with the route's status, code and `final` (`isFinalRefusal` says
 * what the caller does with it).
 */
export async function completeOnRoute({ routeUrl, headers = {}, url, durationMs, signal }) {
  const payload = durationMs === undefined ? { url } : { url, durationMs }
  for (let attempt = 0; ; attempt++) {
    const backoff = (min = 0) => sleep(Math.min(MAX_WAIT_MS, Math.max(500 * 2 ** attempt, min)), signal)
    const last = attempt >= ATTEMPTS - 1
    let res
    try {
      res = await fetch(routeUrl, {
        method: 'POST',
        headers: { ...(await headersNow(headers)), 'content-type': 'application/json' },
        body: JSON.stringify({ type: 'session-audio.complete-upload', payload }),
        signal,
      })
    } catch (err) {
      if (isAbort(err) || last) throw err
      await backoff()
      continue
    }
    let body = null
    try {
      body = await res.json()
    } catch {}
    if (res.ok) return body
    const err = refusalFromBody(res.status, body, res.headers.get('retry-after'))
    const transient = res.status >= 500 || res.status === 408 || res.status === 429
    if (!transient || last) throw err
    await backoff(retryAfterMs(res.headers.get('retry-after')))
  }
}

/**
 * One delivery: complete `stored` (what an earlier attempt stored, if anything), else `upload()`
 * and complete what it stored. When the route answers that it cannot use the stored blob
 * (`upload_expired`: older than a grant lives; `upload_not_found`: gone), `upload({ again: true })`
 * sends the audio once more (a new grant, a new blob) and that is completed: one re-send per
 * delivery, never a loop. `upload` resolves with `{ url, durationMs? }`; `complete(stored)` with
 * the route's answer.
 */
export async function deliverOnce({ stored = null, upload, complete, onResend }) {
  let resent = false
  if (stored) {
    try {
      return await complete(stored)
    } catch (err) {
      if (!uploadAgain(err)) throw err
      resent = true
      await onResend?.(err)
    }
  }
  for (;;) {
    const next = await upload({ again: resent })
    try {
      return await complete(next)
    } catch (err) {
      if (resent || !uploadAgain(err)) throw err
      resent = true
      await onResend?.(err)
    }
  }
}
