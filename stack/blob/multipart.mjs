// `POST {api}/mpu?pathname=P`, multipart as `upload(..., {multipart: true})` drives it
// (x-mpu-action): create → parts (any order, any concurrency) → complete with
// [{partNumber, etag}] in any order. Parts wait under .tmp/mpu/<uploadId> until complete.
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { json, readBody } from '../http-util.mjs'
import { apiError, CORS, tooLarge } from './reply.mjs'
import { finalPathname, mayOverwrite } from './tokens.mjs'

export function multipartHandler({ store, calls, tokens, webhooks }) {
  const uploads = new Map() // uploadId → { pathname, key, access, constraints, parts: Map<n, {file, etag, size}> }
  const partsDir = (uploadId) => path.join(store.root, '.tmp', 'mpu', uploadId)

  function create(req, res, requested, who) {
    const access = req.headers['x-vercel-blob-access']
    if (access !== 'public' && access !== 'private')
      return apiError(res, 400, 'bad_request', 'access must be "public" or "private"')
    const pathname = finalPathname(req, requested, who.constraints)
    if (store.meta.has(pathname) && !mayOverwrite(req, who.constraints))
      return apiError(res, 400, 'bad_request', 'This blob already exists')
    const uploadId = crypto.randomUUID()
    uploads.set(uploadId, { pathname, key: pathname, access, constraints: who.constraints, parts: new Map() })
    fs.mkdirSync(partsDir(uploadId), { recursive: true })
    return json(res, 200, { uploadId, key: pathname }, CORS)
  }

  async function part(req, res, upload, max) {
    const n = Number(req.headers['x-mpu-part-number'])
    if (!Number.isInteger(n) || n < 1 || n > 10000)
      return apiError(res, 400, 'bad_request', 'Invalid part number', CORS)
    const body = await readBody(req)
    const sizeSoFar = [...upload.parts.values()].reduce((a, p) => a + p.size, 0) + body.length
    if (sizeSoFar > max) return apiError(res, 400, 'bad_request', tooLarge(max), CORS)
    const file = path.join(partsDir(req.headers['x-mpu-upload-id']), String(n))
    fs.writeFileSync(file, body)
    const etag = `"${crypto.createHash('md5').update(body).digest('hex')}"`
    upload.parts.set(n, { file, etag, size: body.length })
    return json(res, 200, { etag }, CORS)
  }

  async function complete(req, res, upload, max) {
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
    if (action === 'upload') return part(req, res, upload, max)
    if (action === 'complete') return complete(req, res, upload, max)
    return apiError(res, 400, 'bad_request', 'Unknown x-mpu-action', CORS)
  }
}
