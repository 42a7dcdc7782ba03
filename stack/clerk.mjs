// A Clerk-compatible Backend API on 127.0.0.1: the parts session-audio and Convex use.
//   GET  /v1/jwks                                  (Bearer <secret key>)  → { keys: [...] }
//   POST /v1/sessions/{sid}/tokens/{template}      (Bearer <secret key>)  → { object: 'token', jwt }
//   GET  /v1/jwt_templates                         (Bearer <secret key>)  → [{ object: 'jwt_template', name, … }]
//                                                  (`?paginated=true`: { data, total_count }), as Clerk lists them
//   POST /v1/sessions {user_id}                    (Bearer <secret key>)  → a new active session (Clerk: testing only)
//   POST /v1/sessions/{sid}/revoke                 (Bearer <secret key>)  → the session, revoked
//   GET  /.well-known/openid-configuration, /.well-known/jwks.json        (what Convex reads)
// and, for a browser, the few Frontend API pieces `clerkMiddleware` needs without clerk-js:
//   GET  /sign-in?redirect_url=…   a dev sign-in page: pick a test user; POST sets `__session`,
//                                  `__client_uat` and the dev-browser cookie, then redirects back
//   GET  /sign-out?redirect_url=…  clears them
//   GET  /v1/client/handshake      the handshake `clerkMiddleware` redirects to (token format)
// With `rateLimit` (the local stack uses Clerk's development limit, 100 per 10 s), Backend API
// calls beyond it get 429 + Retry-After, as the real service answers. A session that is not active
// (unknown, `ended`, `revoked`) gets 404 from the template-token endpoint; `refusalStatus`
// (`{ revoked: 401 }`, …) answers another status for a session in that state instead.
// Keys are generated per start; tokens are signed with `jose`, headers and claims as Clerk's
// (docs/protocols.md §C.1, §C.4).
import { randomUUID } from 'node:crypto'
import { SignJWT, exportJWK, exportSPKI, generateKeyPair } from 'jose'
import { json, listen, readBody, retryAfter, takeFailure } from './http-util.mjs'

export const CAT_SESSION = 'cl_B7d4PD111AAA'
export const CAT_TEMPLATE = 'cl_B7d4PD222AAA'

/** The test users the dev sign-in page offers. */
export const DEV_USERS = [
  { id: 'user_alice', name: 'Alice (dev)' },
  { id: 'user_bob', name: 'Bob (dev)' },
]
const DEV_BROWSER = 'dvb_session_audio_local'
const cookieOf = (req, name) =>
  (req.headers.cookie || '')
    .split(/;\s*/)
    .map((c) => c.split('='))
    .find(([k]) => k === name)?.[1]
const escapeHtml = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

export async function startClerk({
  port = 0,
  secretKey = 'sk_test_local_session_audio',
  templates = ['convex'],
  rateLimit,
  refusalStatus = {},
  // Dev sign-in cookies outlive Clerk's 60 s session tokens: there is no clerk-js here to refresh them.
  browserSessionTtl = 8 * 3600,
  users = DEV_USERS,
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
  const calls = { jwks: 0, tokens: 0, limited: 0, handshakes: 0, signIns: 0 }
  // Every request that reached the template-token endpoint, rate limited or not, per session id.
  const tokenRequests = new Map()
  const hits = [] // timestamps of Backend API calls, for the rate limit
  // Failure injection (`fail`, see takeFailure in http-util.mjs; kinds `jwks`, `tokens`) and
  // `latencyMs`, added before every Backend API answer (benchmarks model the real service's RTT).
  const state = { fail: null, latencyMs: 0 }
  const injected = (res, fail) =>
    json(
      res,
      fail.status,
      {
        errors: [
          fail.status === 429
            ? { code: 'too_many_requests', message: 'Too many requests' }
            : { code: 'injected_failure', message: 'injected failure' },
        ],
      },
      retryAfter(fail),
    )

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
    const m = url.pathname.match(/^\/v1\/sessions\/([^/]+)\/tokens\/([^/]+)$/)
    if (req.method === 'POST' && m) {
      const sid = decodeURIComponent(m[1])
      tokenRequests.set(sid, (tokenRequests.get(sid) ?? 0) + 1)
    }
    if (url.pathname.startsWith('/v1/') && url.pathname !== '/v1/client/handshake') {
      const now = Date.now()
      hits.push(now)
      while (hits.length && hits[0] < now - 10_000) hits.shift()
      if (rateLimit && hits.length > rateLimit) {
        calls.limited++
        return json(
          res,
          429,
          { errors: [{ code: 'too_many_requests', message: 'Too many requests' }] },
          { 'retry-after': String(Math.max(1, Math.ceil((hits[hits.length - rateLimit] + 10_000 - now) / 1000))) },
        )
      }
    }
    if (req.method === 'GET' && url.pathname === '/sign-in') return signInPage(res, url)
    if (req.method === 'POST' && url.pathname === '/sign-in') return signIn(req, res)
    if (req.method === 'GET' && url.pathname === '/sign-out') return signOut(req, res, url)
    if (req.method === 'GET' && url.pathname === '/v1/client/handshake') return handshake(req, res, url)
    if (req.method === 'GET' && url.pathname === '/v1/jwks') {
      calls.jwks++
      if (!authorized(req)) return keyInvalid(res)
      const fail = takeFailure(state, 'jwks')
      if (fail) return injected(res, fail)
      return json(res, 200, { keys: jwks })
    }
    if (req.method === 'POST' && url.pathname === '/v1/sessions') {
      if (!authorized(req)) return keyInvalid(res)
      let userId
      try {
        userId = JSON.parse((await readBody(req)).toString('utf8')).user_id
      } catch {}
      if (typeof userId !== 'string' || !userId) {
        return json(res, 422, { errors: [{ code: 'form_param_missing', message: 'user_id is missing' }] })
      }
      const sid = `sess_${randomUUID().replace(/-/g, '').slice(0, 20)}`
      sessions.set(sid, { sub: userId, status: 'active' })
      return json(res, 200, { object: 'session', id: sid, user_id: userId, status: 'active' })
    }
    const revoke = url.pathname.match(/^\/v1\/sessions\/([^/]+)\/revoke$/)
    if (req.method === 'POST' && revoke) {
      if (!authorized(req)) return keyInvalid(res)
      const sid = decodeURIComponent(revoke[1])
      const session = sessions.get(sid)
      if (!session) return json(res, 404, { errors: [{ code: 'resource_not_found', message: 'Session not found' }] })
      session.status = 'revoked'
      return json(res, 200, { object: 'session', id: sid, user_id: session.sub, status: 'revoked' })
    }
    if (req.method === 'GET' && url.pathname === '/v1/jwt_templates') {
      if (!authorized(req)) return keyInvalid(res)
      const list = templates.map((name, k) => ({
        object: 'jwt_template',
        id: `jtmp_local${String(k).padStart(18, '0')}`,
        name,
        claims: { aud: 'convex' },
        lifetime: 60,
        allowed_clock_skew: 5,
        custom_signing_key: false,
        signing_algorithm: 'RS256',
        created_at: 0,
        updated_at: 0,
      }))
      const paginated = url.searchParams.get('paginated') === 'true'
      return json(res, 200, paginated ? { data: list, total_count: list.length } : list)
    }
    if (req.method === 'POST' && m) {
      calls.tokens++
      if (!authorized(req)) return keyInvalid(res)
      const now = Date.now()
      const fail = takeFailure(state, 'tokens')
      if (fail) return injected(res, fail)
      const [sid, template] = [decodeURIComponent(m[1]), decodeURIComponent(m[2])]
      if (!templates.includes(template)) {
        return json(res, 404, {
          errors: [{ code: 'resource_not_found', message: `JWT template ${template} not found` }],
        })
      }
      const session = sessions.get(sid)
      if (!session || session.status !== 'active') {
        const status = (session && refusalStatus[session.status]) || 404
        if (status === 404) {
          return json(res, 404, { errors: [{ code: 'resource_not_found', message: 'Session not found' }] })
        }
        return json(res, status, {
          errors: [{ code: 'session_not_active', message: `Session is ${session.status}` }],
        })
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

  // ---- the browser side: dev sign-in, sign-out, handshake ----
  const safeRedirect = (raw) => {
    try {
      const u = new URL(raw)
      return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : '/'
    } catch {
      return '/'
    }
  }
  const cookie = (name, value, maxAge) => `${name}=${value}; Path=/; SameSite=Lax; Max-Age=${maxAge}`
  async function signedInCookies(sub, sid, origin) {
    const token = await sessionToken({
      sub,
      sid,
      claims: { azp: origin, exp: Math.floor(Date.now() / 1000) + browserSessionTtl },
    })
    const iat = Math.floor(Date.now() / 1000)
    return [
      cookie('__session', token, browserSessionTtl),
      cookie('__client_uat', String(iat - 1), browserSessionTtl),
      cookie('__clerk_db_jwt', DEV_BROWSER, browserSessionTtl),
      cookie('__sa_dev_sid', sid, browserSessionTtl),
    ]
  }
  const signedOutCookies = () => [
    cookie('__session', '', 0),
    cookie('__client_uat', '0', 31536000),
    cookie('__clerk_db_jwt', DEV_BROWSER, 31536000),
    cookie('__sa_dev_sid', '', 0),
  ]
  function signInPage(res, url) {
    const back = escapeHtml(safeRedirect(url.searchParams.get('redirect_url') || '/'))
    const buttons = users
      .map((u) => `<button name="user" value="${escapeHtml(u.id)}">Sign in as ${escapeHtml(u.name)}</button>`)
      .join('\n')
    const html = `<!doctype html><meta charset="utf-8"><title>Dev sign-in — session-audio local stack</title>
<style>body{font:16px system-ui;max-width:32rem;margin:4rem auto}button{display:block;margin:.5rem 0;padding:.6rem 1rem;font:inherit}</style>
<h1>Dev sign-in</h1><p>Local Clerk-compatible stack: no password, pick a test user.</p>
<form method="post" action="/sign-in"><input type="hidden" name="redirect_url" value="${back}">${buttons}</form>`
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
    res.end(html)
  }
  async function signIn(req, res) {
    const form = new URLSearchParams((await readBody(req)).toString('utf8'))
    const user = users.find((u) => u.id === form.get('user'))
    if (!user) return json(res, 400, { errors: [{ code: 'form_param_unknown', message: 'unknown dev user' }] })
    calls.signIns++
    const back = safeRedirect(form.get('redirect_url') || '/')
    const sid = `sess_${randomUUID().replace(/-/g, '').slice(0, 20)}`
    sessions.set(sid, { sub: user.id, status: 'active' })
    res.writeHead(303, { location: back, 'set-cookie': await signedInCookies(user.id, sid, new URL(back).origin) })
    res.end()
  }
  function signOut(req, res, url) {
    const session = sessions.get(cookieOf(req, '__sa_dev_sid'))
    if (session) session.status = 'ended'
    res.writeHead(303, {
      location: safeRedirect(url.searchParams.get('redirect_url') || '/'),
      'set-cookie': signedOutCookies(),
    })
    res.end()
  }
  /** What Clerk's Frontend API does for a handshake, in the token format: the cookies to set, signed. */
  async function handshake(req, res, url) {
    calls.handshakes++
    const back = new URL(safeRedirect(url.searchParams.get('redirect_url') || '/'))
    const sid = cookieOf(req, '__sa_dev_sid')
    const session = sid && sessions.get(sid)
    const directives =
      session && session.status === 'active' ? await signedInCookies(session.sub, sid, back.origin) : signedOutCookies()
    const iat = Math.floor(Date.now() / 1000)
    const jwt = await new SignJWT({ handshake: directives })
      .setProtectedHeader({ alg: 'RS256', kid: current.kid, typ: 'JWT' })
      .setIssuedAt(iat)
      .setExpirationTime(iat + 60)
      .sign(current.privateKey)
    back.searchParams.set('__clerk_handshake', jwt)
    res.writeHead(307, { location: back.href })
    res.end()
  }

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
    /** Requests that reached the template-token endpoint for `sid`, rate limited ones included. */
    tokenRequests: (sid) => tokenRequests.get(sid) ?? 0,
    sessions,
    state,
    sessionToken,
    get connections() {
      return peer.connections
    },
    close: () => peer.close(),
  }
}
