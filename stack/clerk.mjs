// A Clerk-compatible Backend API on 127.0.0.1: the parts session-audio and Convex use.
//   GET  /v1/jwks                                  (Bearer <secret key>)  → { keys: [...] }
//   POST /v1/sessions/{sid}/tokens/{template}      (Bearer <secret key>)  → { object: 'token', jwt }
//   GET  /.well-known/openid-configuration, /.well-known/jwks.json        (what Convex reads)
// Keys are generated per start; tokens are signed with `jose`, headers and claims as Clerk's
// (shared/docs/protocols.md C.1, C.4).
import { randomUUID } from 'node:crypto'
import { SignJWT, exportJWK, exportSPKI, generateKeyPair } from 'jose'
import { json, listen } from './http-util.mjs'

export const CAT_SESSION = 'cl_B7d4PD111AAA'
export const CAT_TEMPLATE = 'cl_B7d4PD222AAA'

export async function startClerk({
  port = 0,
  secretKey = 'sk_test_local_session_audio',
  templates = ['convex'],
  rateLimit,
} = {}) {
  const newKey = async () => {
    const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true })
    const kid = `ins_${randomUUID().replace(/-/g, '').slice(0, 24)}`
    const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' }
    return { privateKey, kid, jwk, publicKeyPem: await exportSPKI(publicKey) }
  }
  let current = await newKey()
  const jwks = [current.jwk] // what /v1/jwks serves: rotation adds the new key first
  const sessions = new Map() // sid → { sub, status }
  const calls = { jwks: 0, tokens: 0 }
  const hits = [] // timestamps of Backend API calls, for the rate limit
  // `latencyMs`: added before every Backend API answer (benchmarks model the real service's RTT).
  const state = { forceStatus: null, retryAfter: 3, latencyMs: 0 }

  let issuer = ''
  const authorized = (req) => req.headers.authorization === `Bearer ${secretKey}`
  const keyInvalid = (res) => json(res, 401, { errors: [{ code: 'clerk_key_invalid', message: 'Secret key invalid' }] })

  const peer = await listen(async (req, res) => {
    const url = new URL(req.url, 'http://x')
    if (state.latencyMs && url.pathname.startsWith('/v1/')) await new Promise((r) => setTimeout(r, state.latencyMs))
    if (req.method === 'GET' && url.pathname === '/.well-known/openid-configuration') {
      return json(res, 200, {
        issuer,
        jwks_uri: `${issuer}/.well-known/jwks.json`,
        id_token_signing_alg_values_supported: ['RS256'],
      })
    }
    if (req.method === 'GET' && url.pathname === '/.well-known/jwks.json') return json(res, 200, { keys: jwks })
    if (req.method === 'GET' && url.pathname === '/v1/jwks') {
      calls.jwks++
      if (!authorized(req)) return keyInvalid(res)
      if (state.forceStatus) return json(res, state.forceStatus, { errors: [{ code: 'forced' }] })
      return json(res, 200, { keys: jwks })
    }
    const m = url.pathname.match(/^\/v1\/sessions\/([^/]+)\/tokens\/([^/]+)$/)
    if (req.method === 'POST' && m) {
      calls.tokens++
      if (!authorized(req)) return keyInvalid(res)
      const now = Date.now()
      hits.push(now)
      while (hits.length && hits[0] < now - 10_000) hits.shift()
      if (state.forceStatus === 429 || (rateLimit && hits.length > rateLimit)) {
        return json(
          res,
          429,
          { errors: [{ code: 'too_many_requests', message: 'Too many requests' }] },
          { 'retry-after': String(state.retryAfter) },
        )
      }
      if (state.forceStatus) return json(res, state.forceStatus, { errors: [{ code: 'forced' }] })
      const [sid, template] = [decodeURIComponent(m[1]), decodeURIComponent(m[2])]
      if (!templates.includes(template)) {
        return json(res, 404, {
          errors: [{ code: 'resource_not_found', message: `JWT template ${template} not found` }],
        })
      }
      const session = sessions.get(sid)
      if (!session || session.status !== 'active') {
        return json(res, 404, { errors: [{ code: 'resource_not_found', message: 'Session not found' }] })
      }
      const iat = Math.floor(now / 1000)
      const jwt = await new SignJWT({ azp: 'http://localhost:3000', jti: randomUUID() })
        .setProtectedHeader({ alg: 'RS256', kid: current.kid, typ: 'JWT', cat: CAT_TEMPLATE })
        .setSubject(session.sub)
        .setIssuer(issuer)
        .setAudience('convex')
        .setIssuedAt(iat)
        .setNotBefore(iat - 5)
        .setExpirationTime(iat + 60)
        .sign(current.privateKey)
      return json(res, 200, { object: 'token', jwt })
    }
    json(res, 404, { errors: [{ code: 'resource_not_found', message: `${req.method} ${url.pathname}` }] })
  }, port)
  issuer = peer.url

  /** Sign a session token for `sub`; `claims`/`header` override or (with `undefined`) remove fields. */
  async function sessionToken({ sub = 'user_alice', sid, claims = {}, header = {}, key } = {}) {
    sid = sid || `sess_${randomUUID().replace(/-/g, '').slice(0, 20)}`
    if (!sessions.has(sid)) sessions.set(sid, { sub, status: 'active' })
    const iat = Math.floor(Date.now() / 1000)
    const payload = {
      azp: 'http://localhost:3000',
      exp: iat + 60,
      iat,
      iss: issuer,
      nbf: iat - 5,
      sid,
      sub,
      v: 2,
      ...claims,
    }
    for (const [k, v] of Object.entries(payload)) if (v === undefined) delete payload[k]
    const protectedHeader = { alg: 'RS256', kid: current.kid, typ: 'JWT', cat: CAT_SESSION, ...header }
    for (const [k, v] of Object.entries(protectedHeader)) if (v === undefined) delete protectedHeader[k]
    return new SignJWT(payload).setProtectedHeader(protectedHeader).sign(key ?? current.privateKey)
  }

  return {
    url: peer.url,
    issuer,
    secretKey,
    get publicKeyPem() {
      return current.publicKeyPem
    },
    get kid() {
      return current.kid
    },
    /** Key rotation: a new signing key, published in the JWKS next to the old one. */
    async rotate() {
      current = await newKey()
      jwks.unshift(current.jwk)
    },
    calls,
    sessions,
    state,
    sessionToken,
    get connections() {
      return peer.connections
    },
    close: () => peer.close(),
  }
}
