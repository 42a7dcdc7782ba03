// Signed tokens and presigned uploads (docs/presigned-uploads.md), as the service does them:
//   POST {api}/signed-token   a store-wide credential (read-write or OIDC) asks for a delegation:
//                             {delegationToken, clientSigningToken, validUntil}
//   PUT {api}/?pathname=P&vercel-blob-…&vercel-blob-delegation=D&vercel-blob-signature=S
//   POST {api}/mpu?…          the same query on every multipart step; no Authorization header
// The delegation is `<base64url JSON scope>.<base64url HMAC-SHA256(secret, scope segment)>` and the
// client signing token is base64url(HMAC-SHA256(secret, delegation)), so neither is stored: both are
// re-derived from the delegation a request carries. `secret` is random per start (not the read-write
// token): an OIDC-only project has no read-write token, and a restart invalidating every delegation
// is what rotating the store's signing secret would do.
import crypto from 'node:crypto'
import { typeAllowed } from './tokens.mjs'

const OPERATIONS = ['get', 'head', 'put', 'delete']
const HOUR = 3_600_000
const MAX_VALIDITY = 7 * 24 * HOUR
const BODY_FIELDS = ['pathname', 'operations', 'validUntil', 'maximumSizeInBytes', 'allowedContentTypes']
const DELEGATION = 'vercel-blob-delegation'
const SIGNATURE = 'vercel-blob-signature'

const hmac = (key, message) => crypto.createHmac('sha256', key).update(message).digest('base64url')

/** Equal strings, in time independent of where they differ. */
const sameText = (a, b) => {
  const [x, y] = [Buffer.from(String(a)), Buffer.from(String(b))]
  return x.length === y.length && crypto.timingSafeEqual(x, y)
}

const compareUtf8 = (a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))

/**
 * The string a presigned URL's signature covers: `operation=…`, `pathname=…` and `<key>=<value>`
 * for every non-empty `vercel-blob-*` query parameter but the delegation and the signature (so a
 * parameter added, removed or changed breaks it), sorted by UTF-8 bytes, joined by "\n".
 */
export function canonicalString(operation, pathname, searchParams) {
  const lines = [`operation=${operation}`, `pathname=${pathname}`]
  for (const [key, value] of searchParams) {
    if (key.startsWith('vercel-blob-') && key !== DELEGATION && key !== SIGNATURE && value !== '')
      lines.push(`${key}=${value}`)
  }
  return lines.sort(compareUtf8).join('\n')
}

const isInteger = (v) => typeof v === 'number' && Number.isSafeInteger(v)

/** The scope a `POST /signed-token` body asks for, or `{ error }` naming what to fix. */
export function requestedScope(body, storeId, now = Date.now()) {
  if (!body || typeof body !== 'object' || Array.isArray(body)) return { error: 'The body must be a JSON object' }
  const unknown = Object.keys(body).find((k) => !BODY_FIELDS.includes(k))
  if (unknown) return { error: `Unknown field "${unknown}"; allowed: ${BODY_FIELDS.join(', ')}` }
  const {
    pathname = '*',
    operations = ['get'],
    validUntil = now + HOUR,
    maximumSizeInBytes,
    allowedContentTypes,
  } = body
  if (typeof pathname !== 'string' || pathname.length > 950) return { error: '"pathname" must be a string (or "*")' }
  if (
    !Array.isArray(operations) ||
    operations.length === 0 ||
    operations.some((op) => !OPERATIONS.includes(op)) ||
    new Set(operations).size !== operations.length
  )
    return { error: `"operations" must be a non-empty list of distinct ${OPERATIONS.join(', ')}` }
  if (!isInteger(validUntil) || validUntil <= now) return { error: '"validUntil" must be a future time in ms' }
  if (validUntil > now + MAX_VALIDITY) return { error: '"validUntil" may be at most 7 days ahead' }
  if (maximumSizeInBytes !== undefined && (!isInteger(maximumSizeInBytes) || maximumSizeInBytes < 1))
    return { error: '"maximumSizeInBytes" must be a positive integer' }
  if (
    allowedContentTypes !== undefined &&
    (!Array.isArray(allowedContentTypes) ||
      allowedContentTypes.some((t) => typeof t !== 'string' || !/^[^/\s]+\/[^/\s]+$/.test(t)))
  )
    return { error: '"allowedContentTypes" must be a list of types such as "audio/*" or "audio/webm"' }
  return {
    scope: {
      storeId: `store_${storeId}`,
      pathname,
      operations,
      validUntil,
      ...(maximumSizeInBytes !== undefined && { maximumSizeInBytes }),
      ...(allowedContentTypes !== undefined && { allowedContentTypes }),
    },
  }
}

/** A forbidden request: `{ status, code, message }` as the API answers it. */
const forbidden = (message) => ({ status: 403, code: 'forbidden', message })
const badRequest = (message) => ({ status: 400, code: 'bad_request', message })

const flag = (params, key) => {
  const v = params.get(key)
  if (v === null) return { value: false }
  if (v === 'true' || v === 'false') return { value: v === 'true' }
  return { error: `"${key}" must be true or false` }
}

const optionalInteger = (params, key) => {
  const v = params.get(key)
  if (v === null) return { value: undefined }
  return /^\d{1,15}$/.test(v) ? { value: Number(v) } : { error: `"${key}" must be a non-negative integer` }
}

/** The signing authority of the store `storeId` (without its `store_` prefix). */
export function presignAuthority(storeId, secret = crypto.randomBytes(32)) {
  const clientSigningToken = (delegationToken) => hmac(secret, delegationToken)

  /** `{ delegationToken, clientSigningToken, validUntil }` for a scope from `requestedScope`. */
  function issue(scope) {
    const segment = Buffer.from(JSON.stringify(scope)).toString('base64url')
    const delegationToken = `${segment}.${hmac(secret, segment)}`
    return { delegationToken, clientSigningToken: clientSigningToken(delegationToken), validUntil: scope.validUntil }
  }

  /** A delegation's scope when we signed it, else null. */
  function scopeOf(delegationToken) {
    const [segment, mac, extra] = String(delegationToken).split('.')
    if (!segment || !mac || extra !== undefined || !sameText(mac, hmac(secret, segment))) return null
    try {
      const scope = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'))
      return scope && typeof scope === 'object' ? scope : null
    } catch {
      return null
    }
  }

  /** Whether the request is presigned (it carries a delegation or a signature in its query). */
  const carries = (url) => url.searchParams.has(DELEGATION) || url.searchParams.has(SIGNATURE)

  /**
   * Verify a presigned upload of `pathname` (`PUT /` or any `/mpu` step: all are operation `put`)
   * and turn it into the constraints a client token would carry, plus `presigned: true`; or
   * `{ refusal: { status, code, message } }`. `contentType` is what the upload declares.
   */
  function verify(req, url, pathname, contentType, now = Date.now()) {
    const params = url.searchParams
    if (req.headers.authorization) return { refusal: badRequest('A presigned request carries no Authorization header') }
    const delegationToken = params.get(DELEGATION)
    const signature = params.get(SIGNATURE)
    if (!delegationToken || !signature)
      return { refusal: forbidden(`A presigned request needs both ${DELEGATION} and ${SIGNATURE}`) }
    const scope = scopeOf(delegationToken)
    if (!scope) return { refusal: forbidden('Invalid delegation token') }
    const scopeStore = String(scope.storeId ?? '').replace(/^store_/, '')
    if (scopeStore !== storeId) return { refusal: forbidden('The delegation token is for another store') }
    if (req.headers['x-vercel-blob-store-id'] !== storeId)
      return { refusal: forbidden('x-vercel-blob-store-id does not name the delegation token’s store') }
    if (!isInteger(scope.validUntil) || scope.validUntil <= now)
      return { refusal: forbidden('The signed delegation has expired') }
    if (!Array.isArray(scope.operations) || !scope.operations.includes('put'))
      return { refusal: forbidden('The delegation token does not allow "put"') }
    if (scope.pathname && scope.pathname !== '*' && scope.pathname !== pathname)
      return { refusal: forbidden(`The pathname "${pathname}" is outside the delegation token’s scope`) }
    const expected = hmac(
      Buffer.from(clientSigningToken(delegationToken), 'utf8'),
      canonicalString('put', pathname, params),
    )
    if (!sameText(signature, expected)) return { refusal: forbidden('Invalid signature') }

    // Signed, so every parameter below is what the app's server asked for.
    const until = optionalInteger(params, 'vercel-blob-valid-until')
    const max = optionalInteger(params, 'vercel-blob-maximum-size-in-bytes')
    const maxAge = optionalInteger(params, 'vercel-blob-cache-control-max-age')
    const suffix = flag(params, 'vercel-blob-add-random-suffix')
    const overwrite = flag(params, 'vercel-blob-allow-overwrite')
    const malformed = [until, max, maxAge, suffix, overwrite].find((p) => p.error)
    if (malformed) return { refusal: badRequest(malformed.error) }
    if (until.value !== undefined && until.value <= now) return { refusal: forbidden('The presigned URL has expired') }
    const types = params.get('vercel-blob-allowed-content-types')
    const urlTypes = types ? types.split(',') : undefined
    for (const allowed of [scope.allowedContentTypes, urlTypes]) {
      if (!typeAllowed(contentType, allowed))
        return { refusal: badRequest(`contentType "${contentType}" is not allowed`) }
    }
    const limits = [scope.maximumSizeInBytes, max.value].filter(isInteger)
    const callbackUrl = params.get('vercel-blob-callback-url')
    return {
      constraints: {
        presigned: true,
        pathname,
        allowedContentTypes: urlTypes ?? scope.allowedContentTypes,
        ...(limits.length && { maximumSizeInBytes: Math.min(...limits) }),
        addRandomSuffix: suffix.value,
        allowOverwrite: overwrite.value,
        ...(maxAge.value !== undefined && { cacheControlMaxAge: maxAge.value }),
        validUntil: Math.min(scope.validUntil, until.value ?? Infinity),
        ...(callbackUrl && {
          onUploadCompleted: { callbackUrl, tokenPayload: params.get('vercel-blob-callback-token-payload') ?? null },
        }),
      },
    }
  }

  return { issue, verify, carries }
}
