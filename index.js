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

/** Option name → the environment variable it overrides. */
const OPTION_ENV = {
  convexUrl: 'NEXT_PUBLIC_CONVEX_URL',
  clerkSecretKey: 'CLERK_SECRET_KEY',
  clerkJwtKey: 'CLERK_JWT_KEY',
  clerkApiUrl: 'CLERK_API_URL',
  authorizedParties: 'CLERK_AUTHORIZED_PARTIES',
  blobReadWriteToken: 'BLOB_READ_WRITE_TOKEN',
  blobApiUrl: 'VERCEL_BLOB_API_URL',
  sentryDsn: 'SENTRY_DSN',
  trustedHosts: 'SESSION_AUDIO_TRUSTED_HOSTS',
  convexTemplate: 'SESSION_AUDIO_CONVEX_TEMPLATE',
  getSessionQuery: 'SESSION_AUDIO_GET_QUERY',
  allowLoopbackUpstream: 'SESSION_AUDIO_ALLOW_LOOPBACK_UPSTREAM',
  cacheMaxAge: 'SESSION_AUDIO_CACHE_MAX_AGE',
  lookupTtlMs: 'SESSION_AUDIO_LOOKUP_TTL_MS',
  upstreamTimeoutMs: 'SESSION_AUDIO_UPSTREAM_TIMEOUT_MS',
  attachMutation: 'SESSION_AUDIO_ATTACH_MUTATION',
  entitlementsQuery: 'SESSION_AUDIO_ENTITLEMENTS_QUERY',
  maxUploadBytes: 'SESSION_AUDIO_MAX_UPLOAD_BYTES',
  maxDurationMs: 'SESSION_AUDIO_MAX_DURATION_MS',
  allowedTypes: 'SESSION_AUDIO_ALLOWED_TYPES',
  blobAccess: 'SESSION_AUDIO_BLOB_ACCESS',
  logLevel: 'SESSION_AUDIO_LOG',
  serverTiming: 'SESSION_AUDIO_SERVER_TIMING',
  sentryEnvironment: 'SENTRY_ENVIRONMENT',
}
// Options that are not settings: functions, passed to the native handler as they are.
const CALLBACK_OPTIONS = new Set(['onRequest'])
const ENV_KEYS = native.envKeys()

function settingsFrom(options) {
  const settings = {}
  for (const key of ENV_KEYS) {
    const value = process.env[key]
    if (value !== undefined) settings[key] = value
  }
  for (const [name, value] of Object.entries(options || {})) {
    if (CALLBACK_OPTIONS.has(name)) {
      if (value != null && typeof value !== 'function') throw new TypeError(`session-audio: ${name} must be a function`)
      continue
    }
    const key = OPTION_ENV[name]
    if (key === undefined) throw new TypeError(`session-audio: unknown option ${JSON.stringify(name)}`)
    if (value === undefined || value === null) continue
    if (Array.isArray(value)) settings[key] = value.join(',')
    else if (typeof value === 'boolean') settings[key] = value ? '1' : '0'
    else settings[key] = String(value)
  }
  return settings
}

// One native handler (with its caches and connection pools) per distinct configuration. The
// environment is part of the key, so a changed `process.env` (dev hot reload) takes effect.
const handlers = new Map()
const callbackIds = new WeakMap()
let nextCallbackId = 1
function handlerFor(options) {
  const settings = settingsFrom(options)
  const onRequest = (options && options.onRequest) || null
  if (onRequest && !callbackIds.has(onRequest)) callbackIds.set(onRequest, nextCallbackId++)
  const key = JSON.stringify([Object.entries(settings).sort(), onRequest ? callbackIds.get(onRequest) : 0])
  let handler = handlers.get(key)
  if (!handler) {
    if (handlers.size >= 16) handlers.delete(handlers.keys().next().value)
    handler = new native.AudioHandler(settings, onRequest)
    handlers.set(key, handler)
  }
  return handler
}

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
      const taken = call.tryWrite(value)
      if (taken === 1) continue
      if (taken === -1 || !(await call.write(value))) {
        reader.cancel().catch(() => {})
        return
      }
    }
  } catch (err) {
    // The client went away mid-body: the native side abandons the upload, stores nothing.
    call.abort(String((err && err.message) || err))
  }
}

async function post(handler, request, context) {
  const sessionId = await sessionIdFrom(context)
  const call = handler.post({ method: request.method, url: request.url, headers: [...request.headers], sessionId })
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
  settingsFrom(options) // throw on unknown option names now, not on the first request
  return {
    GET: (request, context) => get(handlerFor(options), request, context),
    HEAD: (request, context) => get(handlerFor(options), request, context),
    POST: (request, context) => post(handlerFor(options), request, context),
  }
}

module.exports = { handleAudioGet, handleAudioPost, createAudioHandlers }
