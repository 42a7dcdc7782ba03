// A Vercel Blob-compatible store on 127.0.0.1: the API `@vercel/blob` speaks
// (docs/protocols.md §B) and the blob URLs themselves, on disk under `root`.
//   PUT  {api}/?pathname=P      store the raw body (x-vercel-blob-access, x-content-type,
//                               x-add-random-suffix, x-allow-overwrite); an aborted body stores nothing
//   GET  {api}?url=U            head          GET {api}?prefix=&limit=   list
//   POST {api}/delete           {"urls": [...]}
//   GET  /<pathname>            the blob, with Range/conditional semantics (`send`); private blobs
//                               need `Authorization: Bearer <token>`, as on Vercel
// where {api} = <url>/api/blob (set VERCEL_BLOB_API_URL to it).
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import send from 'send'
import { json, listen, readBody, retryAfter, takeFailure } from './http-util.mjs'

export const LOCAL_BLOB_TOKEN = 'vercel_blob_rw_localstore_sessionaudiodevtoken000000'

const apiError = (res, status, code, message, headers) => json(res, status, { error: { code, message } }, headers)

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
  const state = { fail: null, resetAfterBytes: null, latencyMs: 0 }
  let base = ''

  const authorized = (req) => req.headers.authorization === `Bearer ${token}`
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
    if (!authorized(req))
      return apiError(res, 403, 'forbidden', 'Access denied, please provide a valid token for this resource.')
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
    if (req.headers['x-add-random-suffix'] === '1') {
      const ext = path.extname(pathname)
      pathname = `${pathname.slice(0, pathname.length - ext.length)}-${crypto.randomBytes(15).toString('base64url').slice(0, 20)}${ext}`
    }
    if (meta.has(pathname) && req.headers['x-allow-overwrite'] !== '1') {
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
    await new Promise((r) => out.end(r))
    const file = path.join(root, pathname)
    fs.mkdirSync(path.dirname(file), { recursive: true })
    fs.renameSync(tmp, file)
    meta.set(pathname, {
      access,
      contentType: req.headers['x-content-type'] || 'application/octet-stream',
      size: record.bytes,
      uploadedAt: new Date().toISOString(),
      etag: `"${hash.digest('hex')}"`,
      maxAge: Number(req.headers['x-cache-control-max-age'] || 2592000),
    })
    saveMeta()
    record.stored = true
    record.pathname = pathname
    const d = describe(pathname)
    json(res, 200, {
      url: d.url,
      downloadUrl: d.downloadUrl,
      pathname,
      contentType: d.contentType,
      contentDisposition: d.contentDisposition,
      etag: d.etag,
    })
  }

  function remove(pathname) {
    if (!meta.has(pathname)) return
    meta.delete(pathname)
    fs.rmSync(path.join(root, pathname), { force: true })
  }

  const peer = await listen(async (req, res) => {
    const url = new URL(req.url, 'http://x')
    if (url.pathname === '/api/blob' || url.pathname === '/api/blob/') {
      if (req.method === 'PUT') return put(req, res, url)
      if (req.method !== 'GET') return apiError(res, 405, 'bad_request', 'method not allowed')
      if (!authorized(req)) return apiError(res, 403, 'forbidden', 'Access denied')
      if (url.searchParams.has('url')) {
        calls.head++
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
    state,
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
