// How one request reaches Vercel Blob, for every upload `session-audio/client` makes (one PUT, or
// the steps of a multipart upload): an attempt with XMLHttpRequest in browsers (upload progress)
// or `fetch` elsewhere, and the one stall detector both use. Retries, grants and backoff are the
// caller's (client/blob/client.mjs). Plain browser JS: no Node APIs, no dependencies.

const DEFAULT_API_URL = 'https://vercel.com/api/blob'

/**
 * Where Blob's API is, as `@vercel/blob` finds it in a browser: `explicit`, else
 * `VERCEL_BLOB_API_URL` / `NEXT_PUBLIC_VERCEL_BLOB_API_URL` when `process.env` exists (a bundler
 * inlines the NEXT_PUBLIC one at build time), else Vercel's.
 */
export function blobApiUrl(explicit) {
  if (explicit) return String(explicit).replace(/\/+$/, '')
  let fromEnv = null
  try {
    fromEnv = process.env.VERCEL_BLOB_API_URL || process.env.NEXT_PUBLIC_VERCEL_BLOB_API_URL
  } catch {}
  return (fromEnv || DEFAULT_API_URL).replace(/\/+$/, '')
}

/** A failed Blob request: `retryable` decides whether another attempt is made. */
export class BlobFailure extends Error {
  constructor({ status = 0, code, message, retryable, expired = false, retryAfterMs = 0 }) {
    super(message)
    this.status = status
    this.code = code
    this.retryable = retryable
    this.expired = expired
    this.retryAfterMs = retryAfterMs
  }
}

/** The browser's connectivity: `navigator.onLine` and the window's `online` event. */
export const browserOnline = {
  isOnline: () => typeof navigator === 'undefined' || navigator.onLine !== false,
  waitOnline: () =>
    new Promise((resolve) => {
      if (typeof window === 'undefined' || typeof window.addEventListener !== 'function') return resolve()
      window.addEventListener('online', () => resolve(), { once: true })
    }),
}

export const aborted = (signal) =>
  signal.reason ?? Object.assign(new Error('The upload was aborted.'), { name: 'AbortError' })

/** `promise`, or the signal's reason as soon as it aborts. */
export function untilAborted(promise, signal) {
  if (!signal) return promise
  if (signal.aborted) return Promise.reject(aborted(signal))
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(aborted(signal))
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort)
        resolve(v)
      },
      (e) => {
        signal.removeEventListener('abort', onAbort)
        reject(e)
      },
    )
  })
}

export const sleep = (ms, signal) => untilAborted(new Promise((r) => setTimeout(r, ms)), signal)

export const bodySize = (body) => (body == null ? 0 : typeof body.size === 'number' ? body.size : body.byteLength || 0)

/**
 * The stall detector of every attempt: `onStall()` runs once `stallMs` pass without `arm()` (a
 * sign of life: upload progress, an answer), unless `stop()` came first. Armed when made.
 */
export function stallWatch(stallMs, onStall) {
  let timer = null
  const watch = {
    stalled: false,
    arm() {
      clearTimeout(timer)
      timer = setTimeout(() => {
        watch.stalled = true
        onStall()
      }, stallMs)
    },
    stop: () => clearTimeout(timer),
  }
  watch.arm()
  return watch
}

export const stallFailure = (stallMs) =>
  new BlobFailure({ code: 'stalled', message: `Vercel Blob showed no progress for ${stallMs} ms.`, retryable: true })

/**
 * One attempt with `fetch`. A stall is no answer within `stallMs` (fetch shows no upload progress),
 * so there `stallMs` must cover sending one part on the slowest link you support.
 */
export async function sendWithFetch({ method, url, headers, body, signal, stallMs }) {
  const controller = new AbortController()
  const onAbort = () => controller.abort(signal.reason)
  signal?.addEventListener('abort', onAbort, { once: true })
  const watch = stallWatch(stallMs, () => controller.abort())
  try {
    const res = await fetch(url, { method, headers, body, signal: controller.signal })
    watch.arm()
    const text = await res.text()
    return { status: res.status, text, retryAfter: res.headers.get('retry-after') }
  } catch (err) {
    if (signal?.aborted) throw aborted(signal)
    if (watch.stalled) throw stallFailure(stallMs)
    throw new BlobFailure({
      code: 'network_error',
      message: `Could not reach Vercel Blob: ${err?.message ?? err}`,
      retryable: true,
    })
  } finally {
    watch.stop()
    signal?.removeEventListener('abort', onAbort)
  }
}

/**
 * One attempt with XMLHttpRequest (browsers): it reports upload progress, so a stall is `stallMs`
 * with neither upload progress nor an answer, however long the part takes on a slow link.
 */
export function sendWithXhr({ method, url, headers, body, signal, stallMs, onSent }) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest()
    const onAbort = () => xhr.abort()
    let watch = null
    const done = () => {
      watch.stop()
      signal?.removeEventListener('abort', onAbort)
    }
    xhr.open(method, url)
    for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v)
    xhr.upload.onprogress = (e) => {
      watch.arm()
      onSent?.(e.loaded)
    }
    xhr.onprogress = () => watch.arm()
    xhr.onload = () => {
      done()
      // Only headers CORS exposes are readable (asking for another logs an error): look among them.
      const retryAfter = /^retry-after:\s*(.*)$/im.exec(xhr.getAllResponseHeaders())
      resolve({ status: xhr.status, text: xhr.responseText, retryAfter: retryAfter ? retryAfter[1].trim() : null })
    }
    xhr.onerror = () => {
      done()
      reject(new BlobFailure({ code: 'network_error', message: 'Could not reach Vercel Blob.', retryable: true }))
    }
    xhr.onabort = () => {
      done()
      if (signal?.aborted) reject(aborted(signal))
      else
        reject(
          watch.stalled
            ? stallFailure(stallMs)
            : new BlobFailure({ code: 'aborted', message: 'aborted', retryable: true }),
        )
    }
    signal?.addEventListener('abort', onAbort, { once: true })
    watch = stallWatch(stallMs, () => xhr.abort())
    xhr.send(body ?? null)
  })
}

export const defaultTransport = () => (typeof XMLHttpRequest === 'function' ? sendWithXhr : sendWithFetch)
