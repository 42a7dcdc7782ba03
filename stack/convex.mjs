// A Convex-compatible deployment on 127.0.0.1 speaking the HTTP API that `ConvexHttpClient` uses
// (shared/docs/protocols.md A): POST /api/query | /api/mutation with
// {path, format, args: [encodedArgs]}, Bearer JWTs verified as Convex verifies them (OIDC issuer =
// the Clerk-compatible server, aud "convex", RS256), auth failures as HTTP 401 before any function
// runs, function errors as HTTP 200 {status: "error"}.
//
// The functions are an in-memory model of examples' `listeningSessions` module: each checks the
// caller's identity itself, as the Convex functions users deploy do.
import { createRemoteJWKSet, jwtVerify } from 'jose'
import { convexToJson, jsonToConvex } from 'convex/values'
import { json, listen, readBody } from './http-util.mjs'

export async function startConvex({ clerk, port = 0 } = {}) {
  // No refetch cooldown: tests rotate the issuer's key and expect the next token to verify.
  const jwks = createRemoteJWKSet(new URL(`${clerk.issuer}/.well-known/jwks.json`), { cooldownDuration: 0 })
  const sessions = new Map() // _id → doc
  const calls = { query: 0, mutation: 0 }
  const received = [] // { kind, headers, body } of every call, for wire-compatibility tests
  // Failure injection for tests: { status, body } answers the next call(s) at the HTTP level;
  // { functionError } makes the function throw.
  const state = { fail: null, leakForeignSessions: false }
  let nextId = 1

  const functions = {
    query: {
      'listeningSessions:getForAudio': (identity, { sessionId }) => {
        if (!identity) throw new Error('Unauthenticated')
        const doc = sessions.get(sessionId)
        if (!doc) return null
        // The deployed function refuses foreign sessions; `leakForeignSessions` simulates a
        // function that forgot to, so the addon's own ownership check is tested too.
        if (doc.userId !== identity.subject && !state.leakForeignSessions) return null
        const { _id, userId, status, audioUrl, audioContentType } = doc
        return { _id, userId, status, audioUrl: audioUrl ?? null, ...(audioContentType ? { audioContentType } : {}) }
      },
    },
    mutation: {
      'listeningSessions:create': (identity, args = {}) => {
        if (!identity) throw new Error('Unauthenticated')
        const _id = `k${String(nextId++).padStart(31, '0')}`
        sessions.set(_id, { _id, _creationTime: Date.now(), userId: identity.subject, status: 'recording', ...args })
        return _id
      },
    },
  }

  async function identityFrom(req) {
    const header = req.headers.authorization
    if (!header) return { identity: null }
    if (!/^bearer /i.test(header))
      return { error: [400, { code: 'InvalidAuthHeader', message: 'Invalid Authorization header' }] }
    try {
      const { payload } = await jwtVerify(header.slice(7).trim(), jwks, {
        issuer: clerk.issuer,
        audience: 'convex',
        algorithms: ['RS256'],
      })
      return {
        identity: { subject: payload.sub, issuer: payload.iss, tokenIdentifier: `${payload.iss}|${payload.sub}` },
      }
    } catch (e) {
      return { error: [401, { code: 'Unauthenticated', message: `Could not verify OIDC token claim: ${e.message}` }] }
    }
  }

  const peer = await listen(async (req, res) => {
    const m = new URL(req.url, 'http://x').pathname.match(/^\/api\/(query|mutation)$/)
    if (req.method !== 'POST' || !m) return json(res, 404, { code: 'NotFound', message: 'No such endpoint' })
    const kind = m[1]
    calls[kind]++
    if (state.fail && state.fail.status) {
      const { status, body } = state.fail
      if (!state.fail.sticky) state.fail = null
      res.writeHead(status, { 'content-type': 'application/json' })
      return res.end(body ?? JSON.stringify({ code: 'InternalServerError', message: 'injected failure' }))
    }
    let request
    try {
      request = JSON.parse((await readBody(req)).toString('utf8'))
      received.push({ kind, headers: req.headers, body: request })
    } catch {
      return json(res, 400, { code: 'BadJsonBody', message: 'body is not JSON' })
    }
    const { identity, error } = await identityFrom(req)
    if (error) return json(res, error[0], error[1])
    const fn = functions[kind][request.path]
    if (!fn) {
      return json(res, 200, {
        status: 'error',
        errorMessage: `[Request ID: local] Server Error\nCould not find public function for '${request.path}'.`,
        logLines: [],
      })
    }
    try {
      if (state.fail && state.fail.functionError) {
        const message = state.fail.functionError
        state.fail = null
        throw new Error(message)
      }
      const rawArgs = Array.isArray(request.args) ? request.args[0] : request.args
      const value = fn(identity, jsonToConvex(rawArgs ?? {}))
      json(res, 200, { status: 'success', value: convexToJson(value === undefined ? null : value), logLines: [] })
    } catch (e) {
      json(res, 200, {
        status: 'error',
        errorMessage: `[Request ID: local] Server Error\nUncaught Error: ${e.message}`,
        logLines: [],
      })
    }
  }, port)

  return {
    url: peer.url,
    sessions,
    calls,
    received,
    state,
    /** Insert a session directly (test setup), returning its id. */
    insertSession(doc) {
      const _id = `k${String(nextId++).padStart(31, '0')}`
      sessions.set(_id, { _id, _creationTime: Date.now(), status: 'ready', ...doc })
      return _id
    },
    close: () => peer.close(),
  }
}
