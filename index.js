'use strict'
// The JS face: adapt a Web `Request` to the native handler and its answer to a Web `Response`.
// Everything that decides anything lives in Rust (crates/core); keep this file small.

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
      // A buffered chunk is taken synchronously: no thread hop on the hot path.
      let chunk
      try {
        chunk = reader.tryRead()
      } catch (err) {
        controller.error(err)
        return
      }
      if (chunk) {
        controller.enqueue(chunk)
        return
      }
      return reader.read().then(
        (next) => (next ? controller.enqueue(next) : controller.close()),
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

// Feed the request body into the native upload. A chunk goes in synchronously while the native
// channel has room; when it is full we await room (backpressure reaches the client's socket);
// when the handler stops reading (it refused the upload, or finished), we stop and cancel.
async function pump(call, body) {
  if (!body) return call.end()
  const reader = body.getReader()
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) return call.end()
      // The native side takes at most 64 KiB per write (what it holds before it reads is bounded
      // in bytes): hand the chunk over piece by piece, views into the same buffer.
      let rest = value
      while (rest.length > 0) {
        let taken = call.tryWrite(rest)
        if (taken === 0) taken = await call.write(rest)
        if (taken < 0) {
          reader.cancel().catch(() => {})
          return
        }
        rest = rest.subarray(taken)
      }
    }
  } catch (err) {
    // The client went away mid-body: the native side abandons the upload, stores nothing.
    call.abort(String((err && err.message) || err))
  }
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
  pump(call, request.body)
  return toResponse(await call.response())
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

module.exports = { handleAudioGet, handleAudioPost, createAudioHandlers, sweepOrphanAudio }
