// Who may do what. The read-write token may do anything, and so may a Vercel OIDC token of ours
// (oidc.mjs) that is unexpired and sent with this store's id in `x-vercel-blob-store-id` (blob URLs
// name the store by their host, so a read needs no header); a client token
// (`vercel_blob_client_<store>_<base64(hmac.payload)>`, as `handleUpload` mints it) carries
// constraints signed with the read-write token, enforced here as the service does: signature,
// validUntil, pathname, allowed content types (wildcards too), maximum size, random suffix, no
// overwrite. A presigned request (presigned.mjs) carries no credential but a signed query; its
// constraints come out in the client token's shape, marked `presigned: true`.
import crypto from 'node:crypto'
import path from 'node:path'
import { EXTENSION_TYPES } from './store.mjs'
import { apiError, tooLarge } from './reply.mjs'

export const hmacHex = (key, message) => crypto.createHmac('sha256', key).update(message).digest('hex')

/** A client token's constraints, or an error message, checked against the read-write token. */
export function clientConstraints(clientToken, rwToken) {
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

/** `audio/*` and exact types (parameters ignored), as `allowedContentTypes` allows them. */
export function typeAllowed(contentType, allowed) {
  if (!Array.isArray(allowed) || allowed.length === 0) return true
  const essence = (t) => String(t).split(';')[0].trim().toLowerCase()
  const type = essence(contentType)
  return allowed.some((a) => {
    const want = essence(a)
    return want.endsWith('/*') ? type.startsWith(want.slice(0, -1)) : want === type
  })
}

/** What an upload declares as its type: `x-content-type`, else from the pathname's extension. */
const declaredType = (req, pathname) =>
  req.headers['x-content-type'] || EXTENSION_TYPES[path.extname(pathname || '')] || ''

/**
 * The checks bound to this store's read-write `token`, OIDC issuer and presigning authority. `log`
 * gets `{ op, kind: 'read-write' | 'oidc' | 'presigned', storeId }` for every call let through
 * (`op`: put, mpu, head, list, delete, read, signed-token), so tests can see what arrived.
 */
export function tokenChecks(token, oidc, log = [], presign) {
  const storeId = token.split('_')[3]
  const DENIED = 'Access denied, please provide a valid token for this resource.'
  /** `{ kind }` of the store-wide credential `req` carries for `op`, or `{ why }` it is refused. */
  const credential = (req, op) => {
    const auth = req.headers.authorization || ''
    const sentStoreId = req.headers['x-vercel-blob-store-id'] ?? null
    if (auth === `Bearer ${token}`) {
      log.push({ op, kind: 'read-write', storeId: sentStoreId })
      return { kind: 'read-write' }
    }
    const jwt = /^Bearer (eyJ[\w-]*\.[\w-]*\.[\w-]*)$/.exec(auth)
    if (!jwt) return { why: DENIED }
    const why = oidc.refusal(jwt[1])
    if (why) return { why: `Access denied: ${why}` }
    // The token does not name the store: the API call does, in a header.
    if (op !== 'read' && sentStoreId !== storeId)
      return { why: `Access denied: this OIDC token may not use store "${sentStoreId ?? ''}" (x-vercel-blob-store-id)` }
    log.push({ op, kind: 'oidc', storeId: sentStoreId })
    return { kind: 'oidc' }
  }
  /** Why a store-wide credential is refused for `op`, or null when it is allowed. */
  const refusal = (req, op) => credential(req, op).why ?? null
  const authorized = (req, op) => refusal(req, op) === null
  /**
   * Who may upload `pathname`: a presigned query (`url`) that verifies, the read-write or an OIDC
   * token (no constraints), or a client token whose constraints allow it. Returns
   * `{ constraints, kind: 'presigned' | 'read-write' | 'oidc' | 'client-token' }`, or answers the
   * refusal itself and returns null.
   */
  const uploader = (req, res, url, pathname, op = 'put') => {
    if (presign?.carries(url)) {
      const { constraints, refusal: no } = presign.verify(req, url, pathname, declaredType(req, pathname))
      if (no) {
        apiError(res, no.status, no.code, no.message)
        return null
      }
      const declared = Number(req.headers['x-content-length'] || 0)
      if (constraints.maximumSizeInBytes && declared > constraints.maximumSizeInBytes) {
        apiError(res, 400, 'bad_request', tooLarge(constraints.maximumSizeInBytes))
        return null
      }
      log.push({ op, kind: 'presigned', storeId: req.headers['x-vercel-blob-store-id'] })
      return { constraints, kind: 'presigned' }
    }
    const { kind, why } = credential(req, op)
    if (kind) return { constraints: null, kind }
    const bearer = /^Bearer (vercel_blob_client_\S+)$/.exec(req.headers.authorization || '')
    if (!bearer) {
      apiError(res, 403, 'forbidden', why)
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
    const contentType = declaredType(req, pathname)
    if (!typeAllowed(contentType, constraints.allowedContentTypes)) {
      apiError(res, 400, 'bad_request', `contentType "${contentType}" is not allowed`)
      return null
    }
    const declared = Number(req.headers['x-content-length'] || 0)
    if (constraints.maximumSizeInBytes && declared > constraints.maximumSizeInBytes) {
      apiError(res, 400, 'bad_request', tooLarge(constraints.maximumSizeInBytes))
      return null
    }
    return { constraints, kind: 'client-token' }
  }
  /**
   * Who may ask for a signed token: a store-wide credential, never a client token (the service's
   * `client_token_not_allowed`). Returns the credential's kind, or answers the refusal and returns null.
   */
  const issuer = (req, res) => {
    if (/^Bearer vercel_blob_client_/.test(req.headers.authorization || '')) {
      apiError(
        res,
        403,
        'client_token_not_allowed',
        'Signed tokens need a read-write or OIDC token, not a client token',
      )
      return null
    }
    const { kind, why } = credential(req, 'signed-token')
    if (why) apiError(res, 403, 'forbidden', why)
    return kind ?? null
  }
  return { authorized, refusal, uploader, issuer, storeId }
}

/** The stored pathname: a random suffix when asked for (by header, or by the client token). */
export function finalPathname(req, pathname, constraints) {
  const suffix = constraints ? constraints.addRandomSuffix === true : req.headers['x-add-random-suffix'] === '1'
  if (!suffix) return pathname
  const ext = path.extname(pathname)
  return `${pathname.slice(0, pathname.length - ext.length)}-${crypto.randomBytes(15).toString('base64url').slice(0, 20)}${ext}`
}

/** Whether an upload may replace an existing blob (header, or the client token's `allowOverwrite`). */
export const mayOverwrite = (req, constraints) =>
  constraints ? constraints.allowOverwrite === true : req.headers['x-allow-overwrite'] === '1'
