'use strict'
// The JS face: adapt a Web `Request` to the native handler and its answer to a Web `Response`.
// Everything that decides anything lives in Rust (crates/core); keep this file small.

const { once } = require('node:events')

const native = loadNative()

// The per-platform package (session-audio-<platform>) holds the binary; name the one that is
// missing instead of passing on the loader's generic error.
function loadNative() {
  try {
    return require('./binding.js')
  } catch (err) {
    let libc = ''
    if (process.platform === 'linux') {
      const report = typeof process.report?.getReport === 'function' ? process.report.getReport() : null
      libc = report && report.header && report.header.glibcVersionRuntime ? '-gnu' : '-musl'
    }
    const suffix = `${process.platform}-${process.arch}${libc}${process.platform === 'win32' ? '-msvc' : ''}`
    const supported = require('./package.json').napi.targets.join(', ')
    const error = new Error(
      `session-audio: no native binary for this platform (${suffix}). It ships in the package ` +
        `session-audio-${suffix}, which npm installs as an optional dependency: reinstall without ` +
        `--omit=optional / --no-optional, and do not copy node_modules between platforms. ` +
        `Prebuilt targets: ${supported}. To build from source: cargo and \`npx napi build --platform --release\`.`,
    )
    error.cause = err
    throw error
  }
}

// The options are declared once, in Rust (src/options.rs): their names, types and documentation,
// and the environment variable each one overrides. The merge (option, then environment, then
// default) happens there too; this side only snapshots the environment.
const ENV_KEYS = native.envKeys()
const OPTION_NAMES = new Set(native.optionNames())
// Options that are not settings: functions, passed to the native handler as they are.
const CALLBACK_OPTIONS = new Set(['onRequest'])

function split(options) {
  const settings = {}
  for (const [name, value] of Object.entries(options || {})) {
    if (CALLBACK_OPTIONS.has(name)) {
      if (value != null && typeof value !== 'function') throw new TypeError(`session-audio: ${name} must be a function`)
      continue
    }
    if (!OPTION_NAMES.has(name)) throw new TypeError(`session-audio: unknown option ${JSON.stringify(name)}`)
    if (value !== undefined && value !== null) settings[name] = value
  }
  const env = {}
  for (const key of ENV_KEYS) {
    const value = process.env[key]
    if (value !== undefined) env[key] = value
  }
  return { settings, env, onRequest: (options && options.onRequest) || null }
}

// One native handler holds a configuration's caches and connection pools. It is built once, from
// the options and a snapshot of the environment taken then; nothing is re-read per request but
// the OIDC token (below).
function bind(options) {
  if (options != null && typeof options !== 'object') throw new TypeError('session-audio: options must be an object')
  const { settings, env, onRequest } = split(options)
  try {
    return new native.AudioHandler(settings, env, onRequest)
  } catch (err) {
    // napi converts `settings` here and names an option of the wrong type; that is misuse of the API.
    throw new TypeError(`session-audio: ${err.message}`, { cause: err })
  }
}

// The one-off form (`handleAudioGet(request, context, options?)`) binds a handler on the first call
// with an options object and reuses it for every later call with that same object; calls without
// options share one handler. Keyed by identity: an options object created per request would get
// a fresh handler per request, so route files keep theirs at module scope (or use
// `createAudioHandlers`).
const bound = new WeakMap()
let unbound = null
function handlerFor(options) {
  if (options == null) return (unbound ??= bind(options))
  let handler = bound.get(options)
  if (!handler) {
    handler = bind(options)
    bound.set(options, handler)
  }
  return handler
}

// The Vercel OIDC token Blob calls are made with when the request carries no x-vercel-oidc-token
// header: read from process.env at each request (and each sweep), never from the snapshot above,
// because it is short-lived and changes (`vercel env pull` locally, the runtime on Vercel).
const OIDC_ENV = 'VERCEL_OIDC_TOKEN'
const envOidcToken = () => process.env[OIDC_ENV] || undefined

async function sessionIdFrom(context) {
  const params = await (context && context.params)
  if (!params) return undefined
  const id = params.sessionId !== undefined ? params.sessionId : params.id
  return Array.isArray(id) ? id[0] : id
}

function webStream(reader) {
  return new ReadableStream({
    pull(controller) {
      // Buffered chunks are taken synchronously: no thread hop on the hot path. Each call hands
      // over every chunk already waiting (bounded in Rust), so one pull, not one per chunk.
      let chunks
      try {
        chunks = reader.tryRead()
      } catch (err) {
        controller.error(err)
        return
      }
      if (chunks) {
        for (const chunk of chunks) controller.enqueue(chunk)
        return
      }
      return reader.read().then(
        (next) => {
          if (!next) return controller.close()
          for (const chunk of next) controller.enqueue(chunk)
        },
        (err) => controller.error(err),
      )
    },
    cancel() {
      reader.cancel()
    },
  })
}

function toResponse(result) {
  const body = result.stream ? webStream(result.stream) : result.body || null
  return new Response(body, { status: result.status, headers: result.headers })
}

async function get(handler, request, context) {
  const sessionId = await sessionIdFrom(context)
  const result = await handler.get({
    method: request.method,
    url: request.url,
    headers: [...request.headers],
    sessionId,
    envOidcToken: envOidcToken(),
  })
  return toResponse(result)
}

// A refused upload leaves the rest of its body unread, and a keep-alive socket can carry the
// client's next request only once this request's body has been read: cancelling the body destroys
// the socket (Node's http server, and Next on it), and the client's next request on it fails with
// ECONNRESET. So after a refusal the rest is read and thrown away, within two bounds; when more
// remains than that, the answer says `Connection: close` and the server closes the socket after it.
/**
 * The most of a refused body read and thrown away to keep the connection. Most refusals (a missing
 * header, an expired token, a session in the wrong state) come with a body the client sent whole:
 * up to 1 MiB is a few milliseconds of reading. A bigger rest is not worth pulling through to save
 * one new connection, and a declared rest over it is answered at once.
 */
const DRAIN_MAX_BYTES = 1024 * 1024
/**
 * The longest the answer waits for the rest of a refused body: a client sending slowly, or not at
 * all, gets its answer (with `Connection: close`) after this, not when it is done.
 */
const DRAIN_MAX_MS = 2000
/**
 * When more remains, how long the answer has to get out before the unread body is let go (which
 * destroys the socket). Node's server closes the socket itself right after a `Connection: close`
 * answer; this is for a socket that outlives it.
 */
const CLOSE_GRACE_MS = 1000

const STOP = Symbol('stop')

// Feed the request body into the native upload. A chunk goes in synchronously while the native
// channel has room; when it is full we await room (backpressure reaches the client's socket).
// When the handler stops reading (it refused the upload) the rest is drained, within the bounds
// above. `feed.done` settles when the body was all read, failed, or the drain stopped.
function pump(call, body, declared) {
  let resolveStop
  const stopped = new Promise((resolve) => (resolveStop = resolve))
  let timed = false
  const feed = {
    ended: !body,
    failed: false,
    read: 0,
    declared,
    done: Promise.resolve(),
    stopping: false,
    /** The drain stops now (it resolves `stopped`). */
    stop() {
      feed.stopping = true
      resolveStop(STOP)
    },
    /** The refusal is known: the drain has DRAIN_MAX_MS from now. Resolves when they are over. */
    refused() {
      if (!timed) setTimeout(feed.stop, DRAIN_MAX_MS).unref()
      timed = true
      return stopped
    },
    /** More remains, and the answer says `Connection: close`: the server closes the socket once
     * the answer is out. Should the socket outlive that, the body is let go a little later. */
    letGo() {
      if (reader) setTimeout(() => reader.cancel().catch(() => {}), CLOSE_GRACE_MS).unref()
    },
  }
  const reader = body && body.getReader()
  if (!body) {
    call.end()
    return feed
  }
  feed.done = (async () => {
    try {
      for (;;) {
        const { done, value } = await reader.read()
        if (done) {
          feed.ended = true
          return call.end()
        }
        feed.read += value.length
        // The native side takes at most 64 KiB per write (what it holds before it reads is bounded
        // in bytes): hand the chunk over piece by piece, views into the same buffer.
        let rest = value
        while (rest.length > 0) {
          let taken = call.tryWrite(rest)
          if (taken === 0) taken = await call.write(rest)
          if (taken < 0) return await drain(reader, feed, feed.refused())
          rest = rest.subarray(taken)
        }
      }
    } catch (err) {
      // The client went away mid-body: the native side abandons the upload, stores nothing.
      feed.failed = true
      call.abort(String((err && err.message) || err))
    }
  })()
  return feed
}

/** Read and throw away what is left of a refused body, until it ends, a bound is reached, or `stop`. */
async function drain(reader, feed, stopped) {
  let drained = 0
  while (!feed.stopping && drained < DRAIN_MAX_BYTES) {
    const next = await Promise.race([reader.read(), stopped])
    if (next === STOP) break
    if (next.done) {
      feed.ended = true
      return
    }
    drained += next.value.length
    feed.read += next.value.length
  }
}

/**
 * The handler answered. If the body is not all read, the drain gets its chance first, unless it
 * cannot succeed: the declared rest is over DRAIN_MAX_BYTES, or the handler gave up on the
 * client's pace (408). Then the answer goes out at once, and the client stops sending sooner.
 * Whether the socket stays open is decided here, by what was read: with the body read whole, a
 * refusal keeps the connection (even one the native side marked `close` because the client might
 * still be sending, as a 413 on a declared length); otherwise the answer says `Connection: close`.
 */
async function settle(feed, result) {
  if (!feed.ended && !feed.failed) {
    const stopped = feed.refused()
    const hopeless = result.status === 408 || (feed.declared !== null && feed.declared - feed.read > DRAIN_MAX_BYTES)
    if (hopeless) feed.stop()
    await Promise.race([feed.done, stopped])
  }
  if (feed.failed) return result
  const headers = result.headers.filter(([name]) => name.toLowerCase() !== 'connection')
  if (!feed.ended) {
    headers.push(['connection', 'close'])
    feed.letGo()
  }
  return { ...result, headers }
}

function declaredLength(request) {
  const value = request.headers.get('content-length')
  return value !== null && /^\d+$/.test(value) ? Number(value) : null
}

async function post(handler, request, context) {
  const sessionId = await sessionIdFrom(context)
  const call = handler.post({
    method: request.method,
    url: request.url,
    headers: [...request.headers],
    sessionId,
    envOidcToken: envOidcToken(),
  })
  const feed = pump(call, request.body, declaredLength(request))
  return toResponse(await settle(feed, await call.response()))
}

function handleAudioGet(request, context, options) {
  return get(handlerFor(options), request, context)
}

function handleAudioPost(request, context, options) {
  return post(handlerFor(options), request, context)
}

function createAudioHandlers(options) {
  // Built now: unknown option names and wrong types throw here, where the developer sees it, and
  // each request goes straight to the native handler.
  const handler = bind(options)
  const GET = (request, context) => get(handler, request, context)
  return { GET, HEAD: GET, POST: (request, context) => post(handler, request, context) }
}

// Playback from a Pages Router API route, with Node's (req, res). Next sends what a Pages API
// route writes as written, `Content-Length` included; from an App Router Response it drops that
// header (next/dist/server/send-response.js, FORBIDDEN_HEADERS) and sends the body chunked.
// WebKit (measured in WebKitGTK) takes an answer without a length for a live stream and does not
// seek in it: a player that must seek there plays from this handler (docs/mp4-finalise.md).
function createPagesAudioHandler(options) {
  const handler = bind(options)
  return (req, res) => pagesGet(handler, req, res)
}

async function pagesGet(handler, req, res) {
  // The headers as Next hands them to the route: req.headers carries middleware's overrides
  // (rawHeaders does not), as the App Router route's Request does.
  const headers = []
  for (const [name, value] of Object.entries(req.headers || {})) {
    if (value === undefined) continue
    for (const one of Array.isArray(value) ? value : [value]) headers.push([name, String(one)])
  }
  const query = req.query || {}
  const id = query.sessionId !== undefined ? query.sessionId : query.id
  const result = await handler.get({
    method: req.method || 'GET',
    // Only a POST reads the URL (its callback path); GET never does. A fixed origin keeps a
    // client's Host header out of it.
    url: `http://localhost${req.url || '/'}`,
    headers,
    sessionId: Array.isArray(id) ? id[0] : id,
    envOidcToken: envOidcToken(),
  })
  // A player that dropped the request while it was being checked (it does on every seek) gets
  // nothing, and the upstream read it opened is let go now, not when its idle timeout fires.
  if (res.destroyed || res.writableEnded) {
    if (result.stream) result.stream.cancel()
    return
  }
  res.statusCode = result.status
  for (const [name, value] of result.headers) res.appendHeader(name, value)
  if (!result.stream) return void res.end(result.body ? Buffer.from(result.body) : undefined)
  await relay(result.stream, res)
}

// Pull the native body into Node's response at the pace the client reads it: a full socket
// buffer stops the pulling (and so the upstream read) until it drains. A player that drops the
// request (it does on every seek) cancels the upstream read.
async function relay(reader, res) {
  let gone = false
  const onClose = () => {
    if (gone) return
    gone = true
    reader.cancel()
  }
  res.on('close', onClose)
  // 'close' may have fired before the listener was added.
  if (res.destroyed) onClose()
  try {
    for (;;) {
      const chunks = gone ? null : reader.tryRead() || (await reader.read())
      if (!chunks || gone) break
      // Corked, a batch of chunks goes to the socket as one write (writev), not one per chunk.
      res.cork()
      let full = false
      for (const chunk of chunks) full = !res.write(chunk) || full
      res.uncork()
      if (full) await drained(res)
    }
    if (!gone) res.end()
  } catch {
    // The upstream failed after the headers went out: cut the connection, so the client sees a
    // short body rather than a complete-looking one (as a failed web stream does behind Next).
    if (!gone) res.destroy()
  } finally {
    res.off('close', onClose)
  }
}

// Until the socket drains or closes (the listener of the other event goes with it).
async function drained(res) {
  if (res.destroyed) return
  const stop = new AbortController()
  const wait = (event) => once(res, event, { signal: stop.signal }).catch(() => {})
  await Promise.race([wait('drain'), wait('close')])
  stop.abort()
}

/**
 * Delete the blobs under `listening-sessions/` that no session references and that are older than
 * `olderThanMs` (with `dryRun`, only list them). The other options as for the handlers.
 */
async function sweepOrphanAudio(options = {}) {
  const { olderThanMs, dryRun = false, ...rest } = options || {}
  if (typeof olderThanMs !== 'number' || !(olderThanMs >= 0))
    throw new TypeError('session-audio: sweepOrphanAudio needs olderThanMs, a number of ms ≥ 0')
  const { settings, env } = split(rest)
  const oidc = envOidcToken()
  if (oidc !== undefined) env[OIDC_ENV] = oidc
  return native.sweepOrphanAudio(settings, env, olderThanMs, Boolean(dryRun))
}

module.exports = { handleAudioGet, handleAudioPost, createAudioHandlers, createPagesAudioHandler, sweepOrphanAudio }
