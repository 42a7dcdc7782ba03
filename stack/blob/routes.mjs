// The store's one request handler: the Blob API under /api/blob (CORS, uploads, head, list,
// delete, signed tokens) and the blob URLs themselves (/<pathname>, with Range and conditional requests by `send`;
// private blobs need the read-write or an OIDC token, as on Vercel).
import send from 'send'
import { json, readBody, retryAfter, takeFailure } from '../http-util.mjs'
import { misbehaving } from './faults.mjs'
import { multipartHandler } from './multipart.mjs'
import { requestedScope } from './presigned.mjs'
import { putHandler } from './put.mjs'
import { apiError, CORS } from './reply.mjs'
import { toPathname } from './store.mjs'

export function blobRoutes(ctx) {
  const { store, calls, state, tokens, presign, signedTokens } = ctx
  const put = putHandler(ctx)
  const multipart = multipartHandler(ctx)

  /** `GET {api}?url=U`: one blob's head. */
  function head(req, res, url) {
    calls.head++
    if (misbehaving(state, 'head', res)) return
    // Only a failure aimed at `head` (one with no kind is meant for uploads).
    const injected = state.fail?.kind === 'head' && takeFailure(state, 'head')
    if (injected) {
      return apiError(res, injected.status, injected.code ?? 'unknown_error', 'injected failure', retryAfter(injected))
    }
    const pathname = toPathname(url.searchParams.get('url'))
    return store.meta.has(pathname)
      ? json(res, 200, store.describe(pathname))
      : apiError(res, 404, 'not_found', 'The requested blob does not exist')
  }

  /** `GET {api}?prefix=&limit=`: stored blobs in pathname order (one page, never `hasMore`). */
  function list(req, res, url) {
    calls.list++
    const prefix = url.searchParams.get('prefix') || ''
    const limit = Number(url.searchParams.get('limit') || 1000)
    const blobs = [...store.meta.keys()]
      .filter((p) => p.startsWith(prefix))
      .sort()
      .slice(0, limit)
    return json(res, 200, {
      blobs: blobs.map((p) => {
        const { url, downloadUrl, pathname, size, uploadedAt, etag } = store.describe(p)
        return { url, downloadUrl, pathname, size, uploadedAt, etag }
      }),
      hasMore: false,
    })
  }

  /** `POST {api}/delete {"urls": [...]}`: unknown URLs are ignored, as the service does. */
  async function remove(req, res) {
    calls.delete++
    const why = tokens.refusal(req, 'delete')
    if (why) return apiError(res, 403, 'forbidden', why)
    const { urls = [] } = JSON.parse((await readBody(req)).toString('utf8') || '{}')
    if (misbehaving(state, 'delete', res)) return
    for (const u of urls) store.remove(toPathname(u))
    store.save()
    return json(res, 200, {})
  }

  /**
   * `POST {api}/signed-token {pathname?, operations?, validUntil?, maximumSizeInBytes?,
   * allowedContentTypes?}` → `{delegationToken, clientSigningToken, validUntil}` (presigned.mjs).
   */
  async function signedToken(req, res) {
    calls.signedToken = (calls.signedToken || 0) + 1
    const kind = tokens.issuer(req, res)
    if (!kind) return
    const injected = takeFailure(state, 'signed-token')
    if (injected)
      return apiError(res, injected.status, injected.code ?? 'unknown_error', 'injected failure', retryAfter(injected))
    let body
    try {
      body = JSON.parse((await readBody(req)).toString('utf8'))
    } catch {
      return apiError(res, 400, 'bad_request', 'The body must be JSON')
    }
    const { scope, error } = requestedScope(body, tokens.storeId)
    if (error) return apiError(res, 400, 'bad_request', error)
    signedTokens.push({ body, kind, storeId: req.headers['x-vercel-blob-store-id'] ?? null, scope })
    return json(res, 200, presign.issue(scope))
  }

  /** `GET /<pathname>`: the blob itself, after `state.latencyMs`. */
  async function read(req, res, url) {
    if (req.method !== 'GET' && req.method !== 'HEAD') return apiError(res, 405, 'bad_request', 'method not allowed')
    const pathname = decodeURIComponent(url.pathname.slice(1))
    const m = store.meta.get(pathname)
    if (!m) return apiError(res, 404, 'not_found', 'The requested blob does not exist')
    const why = m.access === 'private' && tokens.refusal(req, 'read')
    if (why) return apiError(res, 403, 'forbidden', `Private blob: ${why}`)
    calls.read++
    if (state.latencyMs) await new Promise((r) => setTimeout(r, state.latencyMs))
    // A cut read: 200 with the first half of the blob, whatever Range asked (faults.mjs `short`).
    if (state.misbehave?.kind === 'read' && state.misbehave.mode === 'short') {
      if (!state.misbehave.sticky) state.misbehave = null
      const half = store.read(pathname).subarray(0, Math.floor(m.size / 2))
      res.writeHead(200, { 'content-type': m.contentType, 'content-length': half.length })
      return res.end(half)
    }
    send(req, url.pathname, { root: store.root, etag: false, lastModified: true, acceptRanges: true, dotfiles: 'deny' })
      .on('headers', (r) => {
        r.setHeader('content-type', m.contentType)
        r.setHeader('etag', m.etag)
        r.setHeader('cache-control', `public, max-age=${m.maxAge}`)
      })
      .on('error', (err) => apiError(res, err.status || 500, 'not_found', 'blob read failed'))
      .pipe(res)
  }

  return async (req, res) => {
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
      const op = url.searchParams.has('url') ? 'head' : 'list'
      const why = tokens.refusal(req, op)
      if (why) return apiError(res, 403, 'forbidden', why)
      return op === 'head' ? head(req, res, url) : list(req, res, url)
    }
    if (url.pathname === '/api/blob/delete' && req.method === 'POST') return remove(req, res)
    if (url.pathname === '/api/blob/signed-token' && req.method === 'POST') return signedToken(req, res)
    return read(req, res, url)
  }
}
