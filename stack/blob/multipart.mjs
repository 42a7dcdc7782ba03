// `POST {api}/mpu?pathname=P`, multipart as `upload(..., {multipart: true})` drives it
// (x-mpu-action): create → parts (any order, any concurrency) → complete with
// [{partNumber, etag}] in any order. Parts wait under .tmp/mpu/<uploadId> until complete.
//
// `complete` enforces what R2 (behind Vercel Blob) enforces and an uploader that sends parts as a
// recording grows must get right: part numbers 1..N with none missing or repeated, and every
// non-final part of one length (R2: "InvalidPart: All non-trailing parts must have the same
// length"). Unlike the service there is no 5 MiB minimum part size, so tests can use small parts.
//
// `log` gets one entry per upload, for tests: `{ uploadId, pathname, key, kind, createdAt,
// partCalls, parts: [{ partNumber, size, etag, kind, startedAt, receivedAt }], completedAt,
// stored, refusals: [message] }` (times in epoch ms; `parts` in arrival order, a part sent again
// appears again; `stored`: the final pathname).
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { json, readBody, retryAfter, takeFailure } from '../http-util.mjs'
import { misbehaving } from './faults.mjs'
import { apiError, CORS, tooLarge } from './reply.mjs'
import { finalPathname, mayOverwrite } from './tokens.mjs'

/** Why a completion's parts (sorted by number, with their stored sizes) are refused, or null. */
export function partsRefusal(parts) {
  if (!parts.length) return 'InvalidPart: no parts'
  for (const [i, p] of parts.entries()) {
    if (p.partNumber !== i + 1)
      return `InvalidPart: part numbers must run 1..${parts.length} without gaps or repeats (got ${parts.map((q) => q.partNumber).join(',')})`
  }
  const size = parts[0].size
  if (parts.slice(0, -1).some((p) => p.size !== size))
    return 'InvalidPart: All non-trailing parts must have the same length'
  return null
}

export function multipartHandler({ store, calls, tokens, webhooks, state, log = [] }) {
  const uploads = new Map() // uploadId → { pathname, key, access, constraints, parts: Map<n, {file, etag, size}>, entry }
  const partsDir = (uploadId) => path.join(store.root, '.tmp', 'mpu', uploadId)

  /** An injected failure for this step (`state.fail` of kind `mpu-create` | `mpu-part` | `mpu-complete`). */
  function injected(res, kind) {
    const fail = takeFailure(state, kind)
    if (!fail) return false
    apiError(res, fail.status, fail.code ?? 'unknown_error', 'injected failure', {
      ...CORS,
      connection: 'close',
      ...retryAfter(fail),
    })
    return true
  }

  function create(req, res, requested, who) {
    const access = req.headers['x-vercel-blob-access']
    if (access !== 'public' && access !== 'private')
      return apiError(res, 400, 'bad_request', 'access must be "public" or "private"')
    if (injected(res, 'mpu-create')) return
    const pathname = finalPathname(req, requested, who.constraints)
    if (store.meta.has(pathname) && !mayOverwrite(req, who.constraints))
      return apiError(res, 400, 'bad_request', 'This blob already exists')
    const uploadId = crypto.randomUUID()
    const entry = {
      uploadId,
      pathname: requested,
      key: pathname,
      kind: who.kind,
      createdAt: Date.now(),
      partCalls: 0,
      parts: [],
      completedAt: null,
      stored: null,
      refusals: [],
    }
    log.push(entry)
    uploads.set(uploadId, { pathname, key: pathname, access, constraints: who.constraints, parts: new Map(), entry })
    fs.mkdirSync(partsDir(uploadId), { recursive: true })
    return json(res, 200, { uploadId, key: pathname }, CORS)
  }

  /** The part's body, or null when the connection was cut (`state.resetAfterBytes`) or went away. */
  async function partBody(req) {
    const resetAt = state.resetAfterBytes
    state.resetAfterBytes = null
    const chunks = []
    let size = 0
    try {
      for await (const chunk of req) {
        chunks.push(chunk)
        size += chunk.length
        if (resetAt !== null && size >= resetAt) {
          req.socket.destroy()
          return null
        }
      }
    } catch {
      return null
    }
    return req.complete ? Buffer.concat(chunks) : null
  }

  async function part(req, res, upload, max, who) {
    const startedAt = Date.now()
    upload.entry.partCalls++
    const n = Number(req.headers['x-mpu-part-number'])
    if (!Number.isInteger(n) || n < 1 || n > 10000)
      return apiError(res, 400, 'bad_request', 'Invalid part number', CORS)
    if (injected(res, 'mpu-part')) return
    const body = await partBody(req)
    if (!body) return
    if (misbehaving(state, 'mpu-part', res)) return
    if (state.partLatencyMs) await new Promise((r) => setTimeout(r, state.partLatencyMs))
    const others = [...upload.parts].filter(([m]) => m !== n).reduce((a, [, p]) => a + p.size, 0)
    if (others + body.length > max) return apiError(res, 400, 'bad_request', tooLarge(max), CORS)
    const file = path.join(partsDir(req.headers['x-mpu-upload-id']), String(n))
    fs.writeFileSync(file, body)
    const etag = `"${crypto.createHash('md5').update(body).digest('hex')}"`
    upload.parts.set(n, { file, etag, size: body.length })
    upload.entry.parts.push({
      partNumber: n,
      size: body.length,
      etag,
      kind: who.kind,
      startedAt,
      receivedAt: Date.now(),
    })
    return json(res, 200, { etag }, CORS)
  }

  async function complete(req, res, upload, max) {
    let list
    try {
      list = JSON.parse((await readBody(req)).toString('utf8'))
    } catch {
      return apiError(res, 400, 'bad_request', 'Invalid parts', CORS)
    }
    if (!Array.isArray(list)) return apiError(res, 400, 'bad_request', 'Invalid parts', CORS)
    if (injected(res, 'mpu-complete')) return
    const parts = [...list].sort((a, b) => a.partNumber - b.partNumber)
    if (!parts.length || parts.some((p) => upload.parts.get(p.partNumber)?.etag !== p.etag))
      return apiError(res, 400, 'bad_request', 'Parts do not match the uploaded parts', CORS)
    const why = partsRefusal(
      parts.map((p) => ({ partNumber: p.partNumber, size: upload.parts.get(p.partNumber).size })),
    )
    if (why) {
      upload.entry.refusals.push(why)
      return apiError(res, 400, 'bad_request', why, CORS)
    }
    const size = parts.reduce((a, p) => a + upload.parts.get(p.partNumber).size, 0)
    if (size > max) return apiError(res, 400, 'bad_request', tooLarge(max), CORS)
    // The blob comes to be here, so the overwrite rule is checked again with the complete's own
    // headers (the official SDK sends a put's options on every multipart call): a blob stored at
    // this pathname since the create is replaced only if the complete says so too.
    if (store.meta.has(upload.pathname) && !mayOverwrite(req, upload.constraints))
      return apiError(res, 400, 'bad_request', 'This blob already exists', CORS)
    const tmp = store.tmpFile()
    const hash = crypto.createHash('md5')
    for (const p of parts) {
      const bytes = fs.readFileSync(upload.parts.get(p.partNumber).file)
      hash.update(bytes)
      fs.appendFileSync(tmp, bytes)
    }
    fs.rmSync(partsDir(req.headers['x-mpu-upload-id']), { recursive: true, force: true })
    uploads.delete(req.headers['x-mpu-upload-id'])
    const etag = `"${hash.digest('hex')}"`
    const maxAge = upload.constraints?.cacheControlMaxAge
    const stored = store.commit(req, tmp, upload.pathname, upload.access, size, etag, maxAge)
    upload.entry.completedAt = Date.now()
    upload.entry.stored = stored.pathname
    json(res, 200, stored, CORS)
    return webhooks.send(upload.constraints, stored)
  }

  return async function multipart(req, res, url) {
    calls.mpu = (calls.mpu || 0) + 1
    const requested = url.searchParams.get('pathname')
    const action = req.headers['x-mpu-action']
    const who = tokens.uploader(req, res, url, requested, 'mpu')
    if (!who) return
    if (action === 'create') return create(req, res, requested, who)
    const upload = uploads.get(req.headers['x-mpu-upload-id'])
    if (!upload || decodeURIComponent(req.headers['x-mpu-key'] || '') !== upload.key)
      return apiError(res, 404, 'not_found', 'No such multipart upload', CORS)
    const max = upload.constraints?.maximumSizeInBytes ?? Infinity
    if (action === 'upload') return part(req, res, upload, max, who)
    if (action === 'complete') return complete(req, res, upload, max)
    return apiError(res, 400, 'bad_request', 'Unknown x-mpu-action', CORS)
  }
}
