// A Vercel Blob-compatible store on 127.0.0.1: the API `@vercel/blob` speaks
// (docs/protocols.md §B, docs/client-uploads.md) and the blob URLs themselves, on disk under `root`.
//   PUT  {api}/?pathname=P      store the raw body (x-vercel-blob-access, x-content-type,
//                               x-add-random-suffix, x-allow-overwrite); an aborted body stores nothing
//   POST {api}/mpu?pathname=P   multipart: x-mpu-action create | upload | complete
//   GET  {api}?url=U            head          GET {api}?prefix=&limit=   list
//   POST {api}/delete           {"urls": [...]}
//   GET  /<pathname>            the blob, with Range/conditional semantics (`send`); private blobs
//                               need `Authorization: Bearer <token>`, as on Vercel
// where {api} = <url>/api/blob (set VERCEL_BLOB_API_URL to it). Uploads accept the read-write token
// or a client token (`vercel_blob_client_…`, as `handleUpload` mints it), whose constraints are
// enforced as the service does: signature, validUntil, pathname, allowed content types (wildcards
// too), maximum size, random suffix, no overwrite. A client-token upload that lands sends the signed
// `blob.upload-completed` webhook to the token's callbackUrl. The API answers CORS, for browsers.
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import send from 'send'
import { json, listen, readBody, retryAfter, takeFailure } from './http-util.mjs'

export const LOCAL_BLOB_TOKEN = 'vercel_blob_rw_localstore_sessionaudiodevtoken000000'

const apiError = (res, status, code, message, headers) => json(res, status, { error: { code, message } }, headers)

const hmacHex = (key, message) => crypto.createHmac('sha256', key).update(message).digest('hex')

/** A client token's constraints, or an error message, checked against the read-write token. */
function clientConstraints(clientToken, rwToken) {
  const parts = clientToken.split('_')
  if (parts.length < 5 || parts[3] !== rwToken.split('_')[3]) return { error: 'Invalid client token' }
  const inner = Buffer.from(parts.slice(4).join('_'), 'base64').toString('utf8')
  const dot = inner.indexOf('.')
  const [sig, payloadB64] = [inner.slice(0, dot), inner.slice(dot + 1)]
  const expected = hmacHex(rwToken, payloadB64)
  if (dot < 0 || sig.length !== expected.length || !crypto.timingSafeEqual(Buffer.from(sig), Buffer.from(expected)))
    return { error: 'Invalid client token' }
  try {
    return { constraints: JSON.parse(Buffer.from(payloadB64, 'base64').toString('utf8')) }
  } catch {
    return { error: 'Invalid client token' }
  }
}

const EXTENSION_TYPES = {
  '.webm': 'audio/webm',
  '.ogg': 'audio/ogg',
  '.mp3': 'audio/mpeg',
  '.m4a': 'audio/mp4',
  '.aac': 'audio/aac',
  '.wav': 'audio/wav',
  '.flac': 'audio/flac',
}

/** `audio/*` and exact types (parameters ignored), as `allowedContentTypes` allows them. */
function typeAllowed(contentType, allowed) {
  if (!Array.isArray(allowed) || allowed.length === 0) return true
  const essence = (t) => String(t).split(';')[0].trim().toLowerCase()
  const type = essence(contentType)
  return allowed.some((a) => {
    const want = essence(a)
    return want.endsWith('/*') ? type.startsWith(want.slice(0, -1)) : want === type
  })
}

const CORS = {
  'access-control-allow-origin': '*',
  'access-control-allow-methods': 'GET, HEAD, PUT, POST, DELETE, OPTIONS',
  'access-control-max-age': '600',
}

export async function startBlob({ root, port = 0, token = LOCAL_BLOB_TOKEN } = {}) {
  fs.mkdirSync(path.join(root, '.tmp'), { recursive: true })
  const metaFile = path.join(root, '.meta.json')
  const meta = new Map(fs.existsSync(metaFile) ? Object.entries(JSON.parse(fs.readFileSync(metaFile, 'utf8'))) : [])
  const saveMeta = () => fs.writeFileSync(metaFile, JSON.stringify(Object.fromEntries(meta)))
  const calls = { put: 0, delete: 0, head: 0, list: 0, read: 0 }
  const puts = [] // { pathname, stored: boolean, bytes, headers }
  // Failure injection (`fail`, see takeFailure in http-util.mjs; kind `put`, plus the Blob error
  // `code` to answer with): a failed PUT stores nothing. `resetAfterBytes` destroys the next PUT's
  // connection after that many body bytes. `latencyMs`: added before the first byte of every blob
  // read (benchmarks).
  // `misbehave`: `{ kind: 'put' | 'delete' | 'head', mode: 'hang' | 'huge', sticky? }`: the next such
  // exchange never answers (`hang`: the request is read, nothing is stored or deleted, no answer), or
  // answers 500 with an 8 MiB error body (`huge`).
  const state = { fail: null, resetAfterBytes: null, latencyMs: 0, holdWebhooks: false, misbehave: null }
  /** Carry out `state.misbehave` for this exchange; true when it took the answer over. */
  function misbehaving(kind, res) {
    const m = state.misbehave
    if (!m || m.kind !== kind) return false
    if (!m.sticky) state.misbehave = null
    if (m.mode === 'huge') {
      const message = 'x'.repeat(8 << 20)
      res.writeHead(500, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ error: { code: 'unknown_error', message } }))
    }
    return true
  }
  let base = ''

  const authorized = (req) => req.headers.authorization === `Bearer ${token}`
  const webhooks = [] // { url, body, status } of every completion webhook sent
  /**
   * Who may upload `pathname`: the read-write token (no constraints), or a client token whose
   * constraints allow it. Answers the refusal itself and returns null.
   */
  const uploader = (req, res, pathname) => {
    if (authorized(req)) return { constraints: null }
    const bearer = /^Bearer (vercel_blob_client_\S+)$/.exec(req.headers.authorization || '')
    if (!bearer) {
      apiError(res, 403, 'forbidden', 'Access denied, please provide a valid token for this resource.')
      return null
    }
    const { constraints, error } = clientConstraints(bearer[1], token)
    if (error) {
      apiError(res, 403, 'forbidden', error)
      return null
    }
    if (typeof constraints.validUntil === 'number' && constraints.validUntil < Date.now()) {
      apiError(res, 403, 'forbidden', 'Token expired')
      return null
    }
    if (constraints.pathname !== pathname) {
      apiError(res, 400, 'bad_request', `The "pathname" "${pathname}" does not match the token payload`)
      return null
    }
    const contentType = req.headers['x-content-type'] || EXTENSION_TYPES[path.extname(pathname)] || ''
    if (!typeAllowed(contentType, constraints.allowedContentTypes)) {
      apiError(res, 400, 'bad_request', `contentType "${contentType}" is not allowed`)
      return null
    }
    const declared = Number(req.headers['x-content-length'] || 0)
    if (constraints.maximumSizeInBytes && declared > constraints.maximumSizeInBytes) {
      apiError(res, 400, 'bad_request', tooLarge(constraints.maximumSizeInBytes))
      return null
    }
    return { constraints }
  }
  const tooLarge = (max) => `File size exceeds the limit: the file length cannot be greater than ${max} bytes`
  /** The stored pathname: a random suffix when asked for (by header, or by the client token). */
  const finalPathname = (req, pathname, constraints) => {
    const suffix = constraints ? constraints.addRandomSuffix === true : req.headers['x-add-random-suffix'] === '1'
    if (!suffix) return pathname
    const ext = path.extname(pathname)
    return `${pathname.slice(0, pathname.length - ext.length)}-${crypto.randomBytes(15).toString('base64url').slice(0, 20)}${ext}`
  }
  const mayOverwrite = (req, constraints) =>
    constraints ? constraints.allowOverwrite === true : req.headers['x-allow-overwrite'] === '1'
  /**
   * The signed `blob.upload-completed` webhook, as Blob sends it once a client-token upload is
   * stored. Retried a few times on failure; `state.holdWebhooks` queues them for `releaseWebhooks()`.
   */
  const held = []
  const sendWebhook = async (constraints, blob) => {
    const callbackUrl = constraints?.onUploadCompleted?.callbackUrl
    if (!callbackUrl) return
    const body = JSON.stringify({
      type: 'blob.upload-completed',
      payload: { blob, tokenPayload: constraints.onUploadCompleted.tokenPayload ?? null },
    })
    const deliver = async () => {
      const record = { url: callbackUrl, body, status: 0 }
      webhooks.push(record)
      for (let attempt = 0; attempt < 3; attempt++) {
        try {
          const r = await fetch(callbackUrl, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'x-vercel-signature': hmacHex(token, body) },
            body,
          })
          record.status = r.status
          await r.arrayBuffer()
          if (r.ok) return
        } catch {
          record.status = -1
        }
        await new Promise((r) => setTimeout(r, 200 * 2 ** attempt))
      }
    }
    if (state.holdWebhooks) held.push(deliver)
    else deliver()
  }
  const toPathname = (urlOrPathname) => {
    try {
      return decodeURIComponent(new URL(urlOrPathname).pathname.slice(1))
    } catch {
      return urlOrPathname
    }
  }
  const describe = (pathname) => {
    const m = meta.get(pathname)
    const url = `${base}/${pathname.split('/').map(encodeURIComponent).join('/')}`
    return {
      url,
      downloadUrl: `${url}?download=1`,
      pathname,
      size: m.size,
      contentType: m.contentType,
      contentDisposition: `attachment; filename="${path.basename(pathname)}"`,
      cacheControl: `public, max-age=${m.maxAge}`,
      uploadedAt: m.uploadedAt,
      etag: m.etag,
    }
  }

  async function put(req, res, url) {
    calls.put++
    const record = { pathname: url.searchParams.get('pathname'), stored: false, bytes: 0, headers: req.headers }
    puts.push(record)
    const who = uploader(req, res, record.pathname)
    if (!who) return
    const max = who.constraints?.maximumSizeInBytes ?? Infinity
    let pathname = record.pathname
    if (
      !pathname ||
      pathname.length > 950 ||
      pathname.includes('//') ||
      pathname.startsWith('api/') ||
      pathname.startsWith('.')
    ) {
      return apiError(res, 400, 'bad_request', 'Invalid pathname')
    }
    const access = req.headers['x-vercel-blob-access']
    if (access !== 'public' && access !== 'private')
      return apiError(res, 400, 'bad_request', 'access must be "public" or "private"')
    const injected = takeFailure(state, 'put')
    if (injected) {
      return apiError(res, injected.status, injected.code ?? 'unknown_error', 'injected failure', {
        connection: 'close',
        ...retryAfter(injected),
      })
    }
    pathname = finalPathname(req, pathname, who.constraints)
    if (meta.has(pathname) && !mayOverwrite(req, who.constraints)) {
      return apiError(
        res,
        400,
        'bad_request',
        'This blob already exists, use `allowOverwrite: true` if you want to overwrite it.',
      )
    }
    const tmp = path.join(root, '.tmp', crypto.randomUUID())
    const out = fs.createWriteStream(tmp)
    out.on('error', () => {}) // destroyed on purpose when the upload fails
    const hash = crypto.createHash('md5')
    const resetAt = state.resetAfterBytes
    state.resetAfterBytes = null
    let failed = false
    const fail = () => {
      if (failed) return
      failed = true
      out.destroy()
      fs.rm(tmp, { force: true }, () => {})
    }
    req.on('aborted', fail)
    req.on('error', fail)
    req.on('close', () => {
      if (!req.complete) fail()
    })
    try {
      for await (const chunk of req) {
        if (failed) break
        record.bytes += chunk.length
        if (record.bytes > max) {
          fail()
          return apiError(res, 400, 'bad_request', tooLarge(max), { connection: 'close' })
        }
        hash.update(chunk)
        if (!out.write(chunk)) await new Promise((r) => (out.once('drain', r), out.once('close', r)))
        if (resetAt !== null && record.bytes >= resetAt) {
          fail()
          req.socket.destroy()
          return
        }
      }
    } catch {
      // The uploader went away mid-body ("aborted"): nothing is stored.
      return fail()
    }
    if (failed || !req.complete) return fail()
    if (misbehaving('put', res)) return fail()
    await new Promise((r) => out.end(r))
    const stored = commit(req, tmp, pathname, access, record.bytes, `"${hash.digest('hex')}"`)
    record.stored = true
    record.pathname = pathname
    json(res, 200, stored)
    sendWebhook(who.constraints, stored)
  }

  /** Move an upload into place and record it; returns what `put()` answers. */
  function commit(req, tmp, pathname, access, size, etag) {
    const file = path.join(root, pathname)
    fs.mkdirSync(path.dirname(file), { recursive: true })
    fs.renameSync(tmp, file)
    meta.set(pathname, {
      access,
      contentType:
        req.headers['x-content-type'] || EXTENSION_TYPES[path.extname(pathname)] || 'application/octet-stream',
      size,
      uploadedAt: new Date().toISOString(),
      etag,
      maxAge: Number(req.headers['x-cache-control-max-age'] || 2592000),
    })
    saveMeta()
    const d = describe(pathname)
    return {
      url: d.url,
      downloadUrl: d.downloadUrl,
      pathname,
      contentType: d.contentType,
      contentDisposition: d.contentDisposition,
      etag: d.etag,
    }
  }

  /**
   * Multipart, as `upload(..., {multipart: true})` drives it: create → parts (any order, any
   * concurrency) → complete with [{partNumber, etag}] in any order. Parts wait under .tmp/mpu.
   */
  const uploads = new Map() // uploadId → { pathname, key, access, constraints, parts: Map<n, {file, etag, size}> }
  async function multipart(req, res, url) {
    calls.mpu = (calls.mpu || 0) + 1
    const requested = url.searchParams.get('pathname')
    const action = req.headers['x-mpu-action']
    const who = uploader(req, res, requested)
    if (!who) return
    if (action === 'create') {
      const access = req.headers['x-vercel-blob-access']
      if (access !== 'public' && access !== 'private')
        return apiError(res, 400, 'bad_request', 'access must be "public" or "private"')
      const pathname = finalPathname(req, requested, who.constraints)
      if (meta.has(pathname) && !mayOverwrite(req, who.constraints))
        return apiError(res, 400, 'bad_request', 'This blob already exists')
      const uploadId = crypto.randomUUID()
      uploads.set(uploadId, { pathname, key: pathname, access, constraints: who.constraints, parts: new Map() })
      fs.mkdirSync(path.join(root, '.tmp', 'mpu', uploadId), { recursive: true })
      return json(res, 200, { uploadId, key: pathname }, CORS)
    }
    const upload = uploads.get(req.headers['x-mpu-upload-id'])
    if (!upload || decodeURIComponent(req.headers['x-mpu-key'] || '') !== upload.key)
      return apiError(res, 404, 'not_found', 'No such multipart upload', CORS)
    const max = upload.constraints?.maximumSizeInBytes ?? Infinity
    if (action === 'upload') {
      const n = Number(req.headers['x-mpu-part-number'])
      if (!Number.isInteger(n) || n < 1 || n > 10000)
        return apiError(res, 400, 'bad_request', 'Invalid part number', CORS)
      const body = await readBody(req)
      const sizeSoFar = [...upload.parts.values()].reduce((a, p) => a + p.size, 0) + body.length
      if (sizeSoFar > max) return apiError(res, 400, 'bad_request', tooLarge(max), CORS)
      const file = path.join(root, '.tmp', 'mpu', req.headers['x-mpu-upload-id'], String(n))
      fs.writeFileSync(file, body)
      const etag = `"${crypto.createHash('md5').update(body).digest('hex')}"`
      upload.parts.set(n, { file, etag, size: body.length })
      return json(res, 200, { etag }, CORS)
    }
    if (action === 'complete') {
      let list
      try {
        list = JSON.parse((await readBody(req)).toString('utf8'))
      } catch {
        return apiError(res, 400, 'bad_request', 'Invalid parts', CORS)
      }
      const parts = [...list].sort((a, b) => a.partNumber - b.partNumber)
      if (!parts.length || parts.some((p) => upload.parts.get(p.partNumber)?.etag !== p.etag))
        return apiError(res, 400, 'bad_request', 'Parts do not match the uploaded parts', CORS)
      const size = parts.reduce((a, p) => a + upload.parts.get(p.partNumber).size, 0)
      if (size > max) return apiError(res, 400, 'bad_request', tooLarge(max), CORS)
      const tmp = path.join(root, '.tmp', crypto.randomUUID())
      const hash = crypto.createHash('md5')
      for (const p of parts) {
        const bytes = fs.readFileSync(upload.parts.get(p.partNumber).file)
        hash.update(bytes)
        fs.appendFileSync(tmp, bytes)
      }
      fs.rmSync(path.join(root, '.tmp', 'mpu', req.headers['x-mpu-upload-id']), { recursive: true, force: true })
      uploads.delete(req.headers['x-mpu-upload-id'])
      const stored = commit(req, tmp, upload.pathname, upload.access, size, `"${hash.digest('hex')}"`)
      json(res, 200, stored, CORS)
      return sendWebhook(upload.constraints, stored)
    }
    return apiError(res, 400, 'bad_request', 'Unknown x-mpu-action', CORS)
  }

  function remove(pathname) {
    if (!meta.has(pathname)) return
    meta.delete(pathname)
    fs.rmSync(path.join(root, pathname), { force: true })
  }

  const peer = await listen(async (req, res) => {
    const url = new URL(req.url, 'http://x')
    if (url.pathname.startsWith('/api/blob')) {
      for (const [k, v] of Object.entries(CORS)) res.setHeader(k, v)
      if (req.method === 'OPTIONS') {
        res.setHeader('access-control-allow-headers', req.headers['access-control-request-headers'] || '*')
        res.writeHead(204)
        return res.end()
      }
    }
    if (url.pathname === '/api/blob/mpu' && req.method === 'POST') return multipart(req, res, url)
    if (url.pathname === '/api/blob' || url.pathname === '/api/blob/') {
      if (req.method === 'PUT') return put(req, res, url)
      if (req.method !== 'GET') return apiError(res, 405, 'bad_request', 'method not allowed')
      if (!authorized(req)) return apiError(res, 403, 'forbidden', 'Access denied')
      if (url.searchParams.has('url')) {
        calls.head++
        if (misbehaving('head', res)) return
        const pathname = toPathname(url.searchParams.get('url'))
        return meta.has(pathname)
          ? json(res, 200, describe(pathname))
          : apiError(res, 404, 'not_found', 'The requested blob does not exist')
      }
      calls.list++
      const prefix = url.searchParams.get('prefix') || ''
      const limit = Number(url.searchParams.get('limit') || 1000)
      const blobs = [...meta.keys()]
        .filter((p) => p.startsWith(prefix))
        .sort()
        .slice(0, limit)
      return json(res, 200, {
        blobs: blobs.map((p) => {
          const { url, downloadUrl, pathname, size, uploadedAt, etag } = describe(p)
          return { url, downloadUrl, pathname, size, uploadedAt, etag }
        }),
        hasMore: false,
      })
    }
    if (url.pathname === '/api/blob/delete' && req.method === 'POST') {
      calls.delete++
      if (!authorized(req)) return apiError(res, 403, 'forbidden', 'Access denied')
      const { urls = [] } = JSON.parse((await readBody(req)).toString('utf8') || '{}')
      if (misbehaving('delete', res)) return
      for (const u of urls) remove(toPathname(u))
      saveMeta()
      return json(res, 200, {})
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return apiError(res, 405, 'bad_request', 'method not allowed')
    const pathname = decodeURIComponent(url.pathname.slice(1))
    const m = meta.get(pathname)
    if (!m) return apiError(res, 404, 'not_found', 'The requested blob does not exist')
    if (m.access === 'private' && !authorized(req))
      return apiError(res, 403, 'forbidden', 'Private blob: Authorization required')
    calls.read++
    if (state.latencyMs) await new Promise((r) => setTimeout(r, state.latencyMs))
    send(req, url.pathname, { root, etag: false, lastModified: true, acceptRanges: true, dotfiles: 'deny' })
      .on('headers', (r) => {
        r.setHeader('content-type', m.contentType)
        r.setHeader('etag', m.etag)
        r.setHeader('cache-control', `public, max-age=${m.maxAge}`)
      })
      .on('error', (err) => apiError(res, err.status || 500, 'not_found', 'blob read failed'))
      .pipe(res)
  }, port)
  base = peer.url

  return {
    url: peer.url,
    apiUrl: `${peer.url}/api/blob`,
    host: `127.0.0.1:${peer.port}`,
    port: peer.port,
    token,
    calls,
    puts,
    webhooks,
    state,
    /** Send the webhooks held while `state.holdWebhooks` was on. */
    releaseWebhooks: () => Promise.all(held.splice(0).map((deliver) => deliver())),
    meta,
    /** Pathnames currently stored. */
    list: () => [...meta.keys()].sort(),
    read: (pathname) => fs.readFileSync(path.join(root, pathname)),
    get connections() {
      return peer.connections
    },
    close: () => peer.close(),
  }
}
