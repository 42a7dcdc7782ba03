// The completion rule of `session-audio/client` (client/route.mjs, client/errors.mjs) and the
// journal's user key (client/user.mjs), as tables: which refusals are final with and without the
// route's `final` flag (the route's side of issue #24 sends it; older routes do not), and which user
// a Clerk session token names. The browser tests (e2e/recorder.e2e.ts, "the completion rule") run
// the same code against the real route and Blob.
import { describe, expect, it } from 'vitest'
import { isFinalRefusal, uploadAgain } from '../client/route.mjs'
import { refusalFromBody, SessionAudioUploadError } from '../client/errors.mjs'
import { belongsTo, jwtSubject, signedInUser, whoFor } from '../client/user.mjs'

const refusal = (status: number, code: string, final?: boolean) =>
  refusalFromBody(status, { error: { code, message: code, ...(final === undefined ? {} : { final }) } })

describe('isFinalRefusal', () => {
  it("follows the route's final flag whatever the status", () => {
    const table: [number, string, boolean, boolean][] = [
      [409, 'invalid_session_state', true, true],
      [400, 'duration_mismatch', true, true],
      [403, 'entitlement_denied', true, true],
      [413, 'duration_limit_exceeded', true, true],
      [503, 'convex_unavailable', false, false],
      [503, 'attach_secret_mismatch', false, false],
      [401, 'token_expired', false, false],
      [404, 'session_not_found', false, false],
      [400, 'upload_expired', false, false],
      [404, 'upload_not_found', false, false],
      // The flag wins over the fallback in both directions.
      [400, 'something_new', false, false],
      [500, 'something_new', true, true],
    ]
    for (const [status, code, final, want] of table)
      expect([status, code, final, isFinalRefusal(refusal(status, code, final))]).toEqual([status, code, final, want])
  })

  it('without the flag (older routes, the client’s own errors): a 4xx but 401, 408, 429, and never the upload-again or session codes', () => {
    const table: [number, string, boolean][] = [
      [409, 'invalid_session_state', true],
      [400, 'duration_mismatch', true],
      [415, 'unsupported_media_type', true],
      [403, 'entitlement_denied', true],
      [401, 'token_expired', false],
      [408, 'upload_timeout', false],
      [429, 'rate_limited', false],
      [502, 'convex_unavailable', false],
      [503, 'convex_unavailable', false],
      [400, 'upload_expired', false],
      [404, 'upload_not_found', false],
      [404, 'session_not_found', false],
      [404, 'multipart_upload_not_found', false],
    ]
    for (const [status, code, want] of table)
      expect([status, code, isFinalRefusal(refusal(status, code))]).toEqual([status, code, want])
    expect(isFinalRefusal(new SessionAudioUploadError(502, 'storage_failed', 'Blob'))).toBe(false)
    expect(isFinalRefusal(new Error('network'))).toBe(false)
  })

  it('upload_expired and upload_not_found ask for the audio again; nothing else does', () => {
    expect(uploadAgain(refusal(400, 'upload_expired'))).toBe(true)
    expect(uploadAgain(refusal(404, 'upload_not_found', false))).toBe(true)
    expect(uploadAgain(refusal(404, 'session_not_found'))).toBe(false)
    expect(uploadAgain(refusal(409, 'invalid_session_state', true))).toBe(false)
  })

  it("reads final and Retry-After from the route's answer, and ignores a final that is not a boolean", () => {
    const err = refusalFromBody(503, { error: { code: 'convex_unavailable', message: 'down', final: false } }, '3')
    expect([err.status, err.code, err.final, err.retryAfterMs]).toEqual([503, 'convex_unavailable', false, 3000])
    const odd = refusalFromBody(400, { error: { code: 'x', message: 'x', final: 'yes' } })
    expect(odd.final).toBeUndefined()
    expect(refusalFromBody(502, null)).toMatchObject({ status: 502, code: 'http_502' })
  })
})

describe('the journal user', () => {
  const b64url = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url')
  const jwt = (claims: Record<string, unknown>) => `${b64url({ alg: 'RS256' })}.${b64url(claims)}.c2ln`

  it('is the sub of the bearer token, decoded without verifying it', () => {
    expect(jwtSubject(jwt({ sub: 'user_alice', sid: 'sess_1' }))).toBe('user_alice')
    expect(signedInUser({ Authorization: `Bearer ${jwt({ sub: 'user_bob' })}` })).toBe('user_bob')
    expect(signedInUser(new Headers({ authorization: `bearer ${jwt({ sub: 'user_ü' })}` }))).toBe('user_ü')
    expect(signedInUser([['authorization', `Bearer ${jwt({ sub: 'user_c' })}`]])).toBe('user_c')
  })

  it('is the userId option when given (null: nobody), else what a headers function names; a failing or hanging one names nobody', async () => {
    const bearer = { authorization: `Bearer ${jwt({ sub: 'user_alice' })}` }
    expect(await whoFor('user_bob', bearer)).toBe('user_bob')
    expect(await whoFor(null, bearer)).toBeNull()
    expect(await whoFor(undefined, bearer)).toBe('user_alice')
    expect(await whoFor(undefined, async () => bearer)).toBe('user_alice')
    expect(
      await whoFor(undefined, () => {
        throw new Error('offline')
      }),
    ).toBeNull()
    const t0 = Date.now()
    expect(await whoFor(undefined, () => new Promise(() => {}))).toBeNull()
    expect(Date.now() - t0).toBeLessThan(3000)
  })

  it("a journal is its user's, and one without a user is everyone's", () => {
    expect(belongsTo({ userId: 'user_alice' }, 'user_alice')).toBe(true)
    expect(belongsTo({ userId: 'user_alice' }, 'user_bob')).toBe(false)
    expect(belongsTo({ userId: 'user_alice' }, null)).toBe(false)
    expect(belongsTo({}, 'user_bob')).toBe(true)
    expect(belongsTo({}, null)).toBe(true)
  })

  it('is nobody when no token names one', () => {
    for (const bad of ['', 'abc', 'a.b.c', `${b64url({})}.${b64url({ sub: 42 })}.x`, `x.${b64url({ sub: '' })}.y`])
      expect(jwtSubject(bad)).toBeNull()
    expect(signedInUser({ authorization: 'Basic dTpw' })).toBeNull()
    expect(signedInUser({})).toBeNull()
    expect(signedInUser(undefined)).toBeNull()
  })
})
