// A Convex-compatible deployment on 127.0.0.1 running the real `examples/convex` functions (with
// `convex-test` as the database and function runtime) behind the HTTP API `ConvexHttpClient` uses
// (docs/protocols.md §A): POST /api/query | /api/mutation with {path, format, args: [args]}.
//   - Bearer JWTs are verified as Convex verifies them (OIDC issuer = the Clerk-compatible server,
//     aud "convex", RS256); a bad token fails the whole request with HTTP 401 before any function runs.
//   - Only public functions are callable (convex-test itself does not enforce that).
//   - Function errors are HTTP 200 {status: "error", errorMessage, errorData?} (ConvexError data).
//   - Each deployment has its own environment variables (`env`), as `npx convex env set` gives a
//     real one: the functions' `process.env` reads them (then the process's own environment).
import crypto from 'node:crypto'
import { AsyncLocalStorage } from 'node:async_hooks'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { build } from 'esbuild'
import { register } from 'node:module'
import { createRemoteJWKSet, jwtVerify } from 'jose'
import { convexToJson, jsonToConvex } from 'convex/values'
import { json, listen, readBody, retryAfter, takeFailure } from './http-util.mjs'

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
// One of two places stack/ reaches into examples/: the Convex functions are the template users copy
// (examples/convex), and the local deployment runs exactly those. Nothing in examples/ imports stack/.
const functionsDir = path.join(repo, 'examples', 'convex')
const MODULES = ['schema', 'listeningSessions', 'entitlements', '_generated/server', '_generated/api']

/**
 * The bundles read `process.env` as `globalThis.__sessionAudioConvexEnv`: this view answers from
 * the environment of the deployment whose function is running (set with `envStorage.run`), so two
 * local deployments in one process do not share their variables. Kept on globalThis so every copy
 * of this module shares one storage and one view.
 */
const envStorage = (globalThis.__sessionAudioConvexEnvStorage ??= new AsyncLocalStorage())
globalThis.__sessionAudioConvexEnv ??= new Proxy(
  {},
  {
    get: (_, key) => {
      const env = envStorage.getStore()
      return env && typeof key === 'string' && key in env ? env[key] : process.env[key]
    },
  },
)

/** Bundle the TypeScript functions once per content hash (Node cannot import .ts directly). */
async function loadFunctions() {
  const sources = MODULES.map((m) => {
    const file = ['.ts', '.js'].map((ext) => path.join(functionsDir, m + ext)).find((f) => fs.existsSync(f))
    return { m, file }
  })
  const hash = crypto.createHash('sha256').update('env-view-v1')
  for (const { file } of sources) hash.update(fs.readFileSync(file))
  // Inside the repo so that the bundles' `convex/*` imports resolve to our node_modules.
  const outdir = path.join(repo, 'node_modules', '.cache', 'session-audio-convex', hash.digest('hex').slice(0, 16))
  if (!fs.existsSync(path.join(outdir, 'done'))) {
    await build({
      entryPoints: Object.fromEntries(sources.map(({ m, file }) => [m, file])),
      outdir,
      bundle: true,
      format: 'esm',
      platform: 'node',
      outExtension: { '.js': '.mjs' },
      external: ['convex', 'convex/*'],
      define: { 'process.env': 'globalThis.__sessionAudioConvexEnv' },
      logLevel: 'error',
    })
    fs.writeFileSync(path.join(outdir, 'done'), '')
  }
  const modules = Object.fromEntries(
    MODULES.map((m) => [`./convex/${m}.js`, () => import(pathToFileURL(path.join(outdir, `${m}.mjs`)).href)]),
  )
  const schema = (await modules['./convex/schema.js']()).default
  return { schema, modules }
}

/** convex-test, with its database reachable for persistence (see convex-test-hooks.mjs). */
let hooked = false
async function loadConvexTest() {
  if (!hooked) register('./convex-test-hooks.mjs', import.meta.url)
  hooked = true
  const convexTest = await import('convex-test')
  if (typeof convexTest.__sessionAudioGetDb !== 'function') {
    throw new Error('convex-test was loaded before its persistence hook was registered (stack/convex-test-hooks.mjs)')
  }
  return convexTest
}

/** Save and restore the root component's documents (`dataFile`: JSON, written atomically). */
function persistence(t, getDb, dataFile) {
  const snapshot = () =>
    t.run(async () => {
      const db = getDb('')
      return {
        nextDocId: db._nextDocId,
        lastCreationTime: db._lastCreationTime,
        documents: Object.fromEntries(Object.entries(db._documents).map(([id, d]) => [id, convexToJson(d)])),
      }
    })
  return {
    async load() {
      if (!dataFile || !fs.existsSync(dataFile)) return 0
      const saved = JSON.parse(fs.readFileSync(dataFile, 'utf8'))
      return t.run(async () => {
        const db = getDb('')
        db._documents = Object.fromEntries(Object.entries(saved.documents).map(([id, d]) => [id, jsonToConvex(d)]))
        db._nextDocId = saved.nextDocId
        db._lastCreationTime = saved.lastCreationTime
        return Object.keys(db._documents).length
      })
    },
    async save() {
      if (!dataFile) return
      const data = JSON.stringify(await snapshot())
      fs.mkdirSync(path.dirname(dataFile), { recursive: true })
      const tmp = `${dataFile}.${process.pid}.tmp`
      fs.writeFileSync(tmp, data)
      fs.renameSync(tmp, dataFile)
    },
  }
}

/**
 * `env`: the deployment's environment variables (mutable: tests change them while it runs). The
 * route's attach secret defaults to a fresh random one (`env.SESSION_AUDIO_CONVEX_SECRET`).
 */
export async function startConvex({ clerk, port = 0, dataFile, env = {} } = {}) {
  env = { SESSION_AUDIO_CONVEX_SECRET: crypto.randomBytes(32).toString('hex'), ...env }
  const { schema, modules } = await loadFunctions()
  const { convexTest, __sessionAudioGetDb } = await loadConvexTest()
  const t = convexTest(schema, modules)
  const store = persistence(t, __sessionAudioGetDb, dataFile)
  const restored = await store.load()
  // No refetch cooldown: tests rotate the issuer's key and expect the next token to verify.
  const jwks = createRemoteJWKSet(new URL(`${clerk.issuer}/.well-known/jwks.json`), { cooldownDuration: 0 })
  const calls = { query: 0, mutation: 0 }
  const received = [] // { kind, headers, body } of every call, for wire-compatibility tests
  // Failure injection (`fail`, see takeFailure in http-util.mjs; kinds `query`, `mutation`, and an
  // optional raw `body`; with `afterRun: true` the function runs first and its answer is lost —
  // replaced by the failure, or by a dropped connection with `reset: true`), or `{ functionError }`:
  // the next function throws. `override[path]`
  // replaces a function with one run against the raw database. `delayRunMs[kind]` holds every call
  // of that kind this long before it runs: it then runs and applies even if its caller gave up
  // waiting (an attach that lands after the route's timeout).
  const state = { fail: null, override: {}, latencyMs: 0, delayRunMs: {} }

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

  async function isPublic(udfPath) {
    const [mod, name = 'default'] = udfPath.split(':')
    const load = modules[`./convex/${mod}.js`]
    if (!load || mod.startsWith('_generated') || mod === 'schema') return false
    const fn = (await load())[name]
    return Boolean(fn && fn.isPublic)
  }

  const peer = await listen(async (req, res) => {
    const m = new URL(req.url, 'http://x').pathname.match(/^\/api\/(query|mutation)$/)
    if (req.method !== 'POST' || !m) return json(res, 404, { code: 'NotFound', message: 'No such endpoint' })
    const kind = m[1]
    calls[kind]++
    if (state.latencyMs) await new Promise((r) => setTimeout(r, state.latencyMs))
    let request
    try {
      request = JSON.parse((await readBody(req)).toString('utf8'))
      received.push({ kind, headers: req.headers, body: request })
    } catch {
      return json(res, 400, { code: 'BadJsonBody', message: 'body is not JSON' })
    }
    const failed = takeFailure(state, kind)
    const lost = failed && failed.afterRun ? failed : null
    if (failed && !lost) {
      res.writeHead(failed.status, { 'content-type': 'application/json', ...retryAfter(failed) })
      return res.end(failed.body ?? JSON.stringify({ code: 'InternalServerError', message: 'injected failure' }))
    }
    if (state.delayRunMs[kind]) await new Promise((r) => setTimeout(r, state.delayRunMs[kind]))
    const fail = state.fail
    const { identity, error } = await identityFrom(req)
    if (error) return json(res, error[0], error[1])
    const udfPath = request.path
    const reply = (value) => {
      if (lost && lost.reset) return req.socket.destroy()
      if (lost) {
        res.writeHead(lost.status, { 'content-type': 'application/json' })
        return res.end(JSON.stringify({ code: 'InternalServerError', message: 'injected failure after the run' }))
      }
      json(res, 200, { status: 'success', value: convexToJson(value === undefined ? null : value), logLines: [] })
    }
    const replyError = (e) =>
      json(res, 200, {
        status: 'error',
        errorMessage: `[Request ID: local] Server Error\nUncaught ${e.data !== undefined ? 'ConvexError' : 'Error'}: ${e.message}`,
        ...(e.data !== undefined ? { errorData: convexToJson(e.data) } : {}),
        logLines: [],
      })
    try {
      if (fail && fail.functionError && (!fail.kind || fail.kind === kind)) {
        state.fail = null
        throw new Error(fail.functionError)
      }
      const args = jsonToConvex((Array.isArray(request.args) ? request.args[0] : request.args) ?? {})
      if (state.override[udfPath]) {
        const value = await envStorage.run(env, () => t.run((ctx) => state.override[udfPath](ctx, identity, args)))
        await store.save()
        return reply(value)
      }
      if (!(await isPublic(udfPath))) throw new Error(`Could not find public function for '${udfPath}'.`)
      const as = identity ? t.withIdentity(identity) : t
      const fn = kind === 'query' ? as.queryFromPath : as.mutationFromPath
      const value = await envStorage.run(env, () => fn.call(as, { componentPath: '', udfPath }, args))
      if (kind === 'mutation') await store.save()
      reply(value)
    } catch (e) {
      replyError(e)
    }
  }, port)

  const runAndSave = async (fn) => {
    const value = await envStorage.run(env, () => t.run(fn))
    await store.save()
    return value
  }
  return {
    url: peer.url,
    /** The deployment's environment variables (`npx convex env set`), read by its functions. */
    env,
    calls,
    received,
    state,
    /** Documents restored from `dataFile` at start. */
    restored,
    /** Run a function against the database directly (test setup and assertions). */
    run: runAndSave,
    /** Insert a session (test setup), returning its id. */
    async insertSession(doc) {
      const now = Date.now()
      return runAndSave((ctx) =>
        ctx.db.insert('listeningSessions', { status: 'ready', createdAt: now, updatedAt: now, ...doc }),
      )
    },
    getSession: (id) => t.run((ctx) => ctx.db.get(id)),
    setEntitlement: (userId, ent) =>
      runAndSave(async (ctx) => {
        const row = await ctx.db
          .query('entitlements')
          .withIndex('by_user', (q) => q.eq('userId', userId))
          .unique()
        if (row) await ctx.db.replace(row._id, { userId, ...ent })
        else await ctx.db.insert('entitlements', { userId, ...ent })
      }),
    countSessions: () => t.run(async (ctx) => (await ctx.db.query('listeningSessions').collect()).length),
    close: () => peer.close(),
  }
}
