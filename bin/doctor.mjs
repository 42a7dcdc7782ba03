// npx session-audio doctor [--json] [--route <path>] [--as-user <Clerk user id>] [--timeout <ms>]
// Checks the whole path live, from where the app's environment is: the process's variables, then
// `.env.development.local`, `.env.local`, `.env.development`, `.env` (as `next dev` loads them, so
// it works right after `vercel env pull .env.local`). Prints a checklist with the fix for each
// failure; values are never printed. Exit 0 when nothing failed (a check that could not be made
// says "not checked" and why), 1 when something failed, 2 on a usage error.
//
// Every call is read-only and anonymous where it can be:
//   - Clerk: GET /v1/jwks and GET /v1/jwt_templates with the secret key;
//   - Convex: each template function called without a user (the template answers its
//     `unauthenticated` ConvexError, which proves the function is deployed, before it reads or
//     writes anything); `attachedAudio` with the sweep secret (or a random one) proves whether both
//     sides hold the same SESSION_AUDIO_SWEEP_SECRET; the template's `checkAttachSetup` query, with
//     a probe signed as the route signs (bin/attach-sign.mjs) under SESSION_AUDIO_CONVEX_SECRET,
//     answers whether Convex holds the same secret and, to a caller holding it, whether it allows
//     the route's Blob store. The probe is signed under its own version line, so it can never be
//     an attach; the secret is never sent;
//   - Blob: a `list` of at most one blob under listening-sessions/ with each configured credential;
//     a GET of VERCEL_BLOB_CALLBACK_URL, if set (any HTTP answer: it is reachable from here).
// No secret goes over plain http except to this machine (`maySendSecretTo`): with an http URL to
// another host, the checks that would send one are not made, and the report says so.
// The route's own parser judges the whole configuration when the addon is installed for this
// platform (`routeVerdict`), so rules kept only in Rust are not copied here.
// With `--as-user <Clerk user id>` (a test user: Clerk's POST /v1/sessions is meant for testing)
// it also proves that Convex accepts the JWT template's tokens and that attachAudio verifies the
// route's signature for a signed-in caller: it opens a session for that user, gets its Convex
// token from the JWT template, and calls attachAudio for a session id that cannot exist, with
// arguments it signed as the route does. The template checks the signature before it looks the
// session up, so `session_not_found` means the signature verified (and the store is configured);
// `invalid_attach_signature` means the secrets differ (or Convex has none: it answers both alike).
// Nothing is written; the Clerk session is revoked at once.
import crypto from 'node:crypto'
import { createRequire } from 'node:module'
import { eachFlag, existingRouteFile, findProject, loadEnv, NEXT_CONFIG_NAMES, UsageError } from './project.mjs'
import { addServerExternalPackage, PACKAGE } from './next-config.mjs'
import { attachMessage, probeMessage, sign } from './attach-sign.mjs'
import fs from 'node:fs'
import path from 'node:path'

export const DOCTOR_USAGE =
  'usage: session-audio doctor [--json] [--route <path>] [--as-user <Clerk user id>] [--timeout <ms>]'

const DEFAULT_CLERK_API = 'https://api.clerk.com'
const DEFAULT_BLOB_API = 'https://vercel.com/api/blob'

function parseArgs(args) {
  const opts = { json: false, route: null, asUser: null, timeoutMs: 10_000 }
  eachFlag(args, (flag, value, arg) => {
    if (flag === '--json') opts.json = true
    else if (flag === '--route') opts.route = value()
    else if (flag === '--as-user') opts.asUser = value()
    else if (flag === '--timeout') {
      opts.timeoutMs = Number(value())
      if (!Number.isInteger(opts.timeoutMs) || opts.timeoutMs < 1)
        throw new UsageError('--timeout is a whole number of ms')
    } else throw new UsageError(`unknown argument ${JSON.stringify(arg)}`)
  })
  return opts
}

/** An http(s) URL with a host → URL, else null: the route's rule (crates/core/src/config.rs). */
function serviceUrl(raw) {
  try {
    const url = new URL(raw)
    if ((url.protocol === 'https:' || url.protocol === 'http:') && url.hostname) return url
  } catch {}
  return null
}

/**
 * The route's other settings, checked as it parses them (crates/core/src/config.rs): a value it
 * would refuse makes every request a `503 config_invalid`.
 */
const SWITCH = ['1', 'true', 'on', '0', 'false', 'off']
const WHOLE = (v) => /^\+?\d+$/.test(v) && BigInt(v) < 2n ** 64n
const SETTINGS = [
  ...[
    'SESSION_AUDIO_CACHE_MAX_AGE',
    'SESSION_AUDIO_LOOKUP_TTL_MS',
    'SESSION_AUDIO_UPSTREAM_TIMEOUT_MS',
    'SESSION_AUDIO_UPLOAD_IDLE_TIMEOUT_MS',
    'SESSION_AUDIO_UPLOAD_TIMEOUT_MS',
    'SESSION_AUDIO_MAX_UPLOAD_BYTES',
    'SESSION_AUDIO_MAX_DURATION_MS',
    'SESSION_AUDIO_CLIENT_TOKEN_TTL_MS',
    // On main since this branch started (serviceTimeoutMs); parsed as the others.
    'SESSION_AUDIO_SERVICE_TIMEOUT_MS',
  ].map((name) => [name, WHOLE, 'a non-negative whole number']),
  ...[
    'SESSION_AUDIO_ACCEPT_PENDING_SESSIONS',
    'SESSION_AUDIO_TRUST_OIDC_HEADER',
    'SESSION_AUDIO_REQUIRE_SESSION_PATH',
    'SESSION_AUDIO_ACCEPT_DECLARED_DURATION',
    'SESSION_AUDIO_CLIENT_UPLOADS',
    'SESSION_AUDIO_SERVER_TIMING',
  ].map((name) => [name, (v) => SWITCH.includes(v), '1 or 0']),
  ['SESSION_AUDIO_ALLOW_LOOPBACK_UPSTREAM', (v) => ['1', 'true', '0', 'false'].includes(v), '1 or 0'],
  ['SESSION_AUDIO_BLOB_ACCESS', (v) => v === 'private' || v === 'public', 'private or public'],
  [
    'SESSION_AUDIO_LOG',
    (v) => ['', 'info', 'off', '0', 'none', 'error', 'warn', 'debug', 'trace'].includes(v.trim().toLowerCase()),
    'off, error, warn, info or debug',
  ],
]

/**
 * The variables the route reads (src/options.rs) that doctor leaves alone when set, and why; every
 * other one is checked above or below (`CHECKED`). __test__/cli-doctor.spec.ts holds the two lists
 * to src/options.rs, so a new setting cannot be forgotten here.
 */
export const UNCHECKED = {
  SENTRY_ENVIRONMENT: "a free-form name (Sentry's environment tag): any value is valid",
}
/**
 * Checked by the route's own parser (the installed addon, `routeVerdict`): its rules live in Rust
 * (host patterns, audio types, the Sentry DSN), and doctor asks the addon rather than copy them.
 */
const PARSED_BY_ROUTE = ['SESSION_AUDIO_TRUSTED_HOSTS', 'SESSION_AUDIO_ALLOWED_TYPES', 'SENTRY_DSN']
export const CHECKED = [
  'NEXT_PUBLIC_CONVEX_URL',
  'CLERK_SECRET_KEY',
  'CLERK_JWT_KEY',
  'CLERK_API_URL',
  'BLOB_STORE_ID',
  'BLOB_READ_WRITE_TOKEN',
  'BLOB_WEBHOOK_PUBLIC_KEY',
  'VERCEL_BLOB_API_URL',
  'SESSION_AUDIO_CONVEX_SECRET',
  'SESSION_AUDIO_SWEEP_SECRET',
  'SESSION_AUDIO_CONVEX_TEMPLATE',
  'SESSION_AUDIO_GET_QUERY',
  'SESSION_AUDIO_ENTITLEMENTS_QUERY',
  'SESSION_AUDIO_ATTACH_MUTATION',
  'SESSION_AUDIO_ATTACHED_QUERY',
  'CLERK_AUTHORIZED_PARTIES',
  'VERCEL_BLOB_CALLBACK_URL',
  ...PARSED_BY_ROUTE,
  ...SETTINGS.map(([name]) => name),
]

/**
 * The route's verdict on `env`: the installed addon builds a handler from it exactly as the route
 * does and says what it refuses (`configError`, `code: message`; its messages name a variable and
 * never echo a value). `{ error }` (null when it accepts the configuration), or `{ unavailable }`
 * when the addon for this platform is not installed here.
 */
function routeVerdict(env) {
  let native
  try {
    native = createRequire(import.meta.url)('../binding.js')
  } catch (e) {
    return { unavailable: e.code ?? 'it did not load' }
  }
  const routeEnv = {}
  for (const key of native.envKeys()) if (typeof env[key] === 'string') routeEnv[key] = env[key]
  return { error: new native.AudioHandler({}, routeEnv, null).configError ?? null }
}

/** The payload of a JWT, decoded (not verified), or null. */
function jwtPayload(token) {
  const parts = String(token).split('.')
  if (parts.length !== 3) return null
  try {
    return JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'))
  } catch {
    return null
  }
}

const normalizeStoreId = (raw) => {
  const id = String(raw).startsWith('store_') ? String(raw).slice(6) : String(raw)
  return /^[A-Za-z0-9-]{1,63}$/.test(id) ? id : null
}
const storeIdFromToken = (token) => {
  const m = /^vercel_blob_rw_([A-Za-z0-9-]{1,63})_\S+$/.exec(String(token))
  return m ? m[1] : null
}

/** The host a URL names, for messages (hosts are not secrets; values are never printed). */
const hostOf = (url) => url.host

/**
 * Whether doctor may send a secret (a key, a token, the sweep secret) to `url`: over https, or over
 * plain http only to this machine, where the local stack and the tests run. Judged by the host as
 * written, never by what it resolves to, so no DNS answer can make a remote host count as local.
 * The WHATWG parser has already normalised the IPv4 spellings (`0x7f.1`, `2130706433`) to dotted
 * form; anything else (`0.0.0.0`, a LAN address, a `.localhost` subdomain a resolver may not keep
 * local) is not loopback.
 */
export function maySendSecretTo(url) {
  if (url.protocol === 'https:') return true
  if (url.protocol !== 'http:') return false
  const host = url.hostname.toLowerCase().replace(/\.$/, '')
  return host === 'localhost' || host === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)
}
/** What doctor says when it keeps a secret off a URL (`maySendSecretTo`). */
const plainHttp = (name) =>
  `${name} is plain http to a host that is not this machine: doctor sends secrets only over https (http only to localhost, 127.x or [::1])`

export async function doctor(
  args,
  { cwd = process.cwd(), out = process.stdout, err = process.stderr, processEnv = process.env } = {},
) {
  let opts
  try {
    opts = parseArgs(args)
  } catch (e) {
    if (!(e instanceof UsageError)) throw e
    err.write(`session-audio doctor: ${e.message}\n${DOCTOR_USAGE}\n`)
    return 2
  }
  const { env, files } = loadEnv(cwd, 'development', processEnv)
  const checks = []
  const add = (id, title, status, detail, fix) => {
    const check = { id, title, status, detail }
    if (fix && status === 'fail') check.fix = fix
    checks.push(check)
    return check
  }
  const has = (name) => typeof env[name] === 'string' && env[name].trim() !== ''

  /** fetch with the timeout; `{ res, body }` (body: parsed JSON or null), or `{ error }`. */
  const call = async (url, init = {}) => {
    try {
      const res = await fetch(url, { ...init, signal: AbortSignal.timeout(opts.timeoutMs), redirect: 'manual' })
      const text = await res.text()
      let body = null
      try {
        body = JSON.parse(text)
      } catch {}
      return { res, body }
    } catch (e) {
      const why = e.name === 'TimeoutError' ? `no answer within ${opts.timeoutMs} ms` : e.cause?.code || e.message
      return { error: why }
    }
  }

  // ---- 1. The variables: present and well-formed ----
  const parsedConvexUrl = has('NEXT_PUBLIC_CONVEX_URL') ? serviceUrl(env.NEXT_PUBLIC_CONVEX_URL.trim()) : null
  const convexUrl = parsedConvexUrl?.hostname.endsWith('.convex.site') ? null : parsedConvexUrl
  if (!has('NEXT_PUBLIC_CONVEX_URL')) {
    add(
      'env.NEXT_PUBLIC_CONVEX_URL',
      'NEXT_PUBLIC_CONVEX_URL',
      'fail',
      'missing',
      'set it to your Convex deployment URL (https://<deployment>.convex.cloud): `vercel env add NEXT_PUBLIC_CONVEX_URL`, `npx convex dev` writes it to .env.local',
    )
  } else if (parsedConvexUrl?.hostname.endsWith('.convex.site')) {
    add(
      'env.NEXT_PUBLIC_CONVEX_URL',
      'NEXT_PUBLIC_CONVEX_URL',
      'fail',
      'a .convex.site host (it serves HTTP actions, not the query API)',
      'use the .convex.cloud deployment URL the Convex dashboard shows',
    )
  } else if (!convexUrl) {
    add(
      'env.NEXT_PUBLIC_CONVEX_URL',
      'NEXT_PUBLIC_CONVEX_URL',
      'fail',
      'not an http(s) URL',
      'set it to the deployment URL the Convex dashboard shows (https://<deployment>.convex.cloud)',
    )
  } else add('env.NEXT_PUBLIC_CONVEX_URL', 'NEXT_PUBLIC_CONVEX_URL', 'pass', `set (${hostOf(convexUrl)})`)

  const clerkKeyOk = has('CLERK_SECRET_KEY') && /^sk_(test|live)_\S+$/.test(env.CLERK_SECRET_KEY.trim())
  if (!has('CLERK_SECRET_KEY')) {
    add(
      'env.CLERK_SECRET_KEY',
      'CLERK_SECRET_KEY',
      'fail',
      'missing',
      'copy the Secret key from the Clerk dashboard (API keys): `vercel env add CLERK_SECRET_KEY`',
    )
  } else if (!clerkKeyOk) {
    add(
      'env.CLERK_SECRET_KEY',
      'CLERK_SECRET_KEY',
      'fail',
      'not a Clerk secret key (sk_test_… or sk_live_…)',
      'copy the Secret key (not the publishable key) from the Clerk dashboard (API keys)',
    )
  } else
    add(
      'env.CLERK_SECRET_KEY',
      'CLERK_SECRET_KEY',
      'pass',
      `set (a ${env.CLERK_SECRET_KEY.trim().startsWith('sk_live_') ? 'production' : 'development'} instance's key)`,
    )

  const clerkApi = has('CLERK_API_URL') ? serviceUrl(env.CLERK_API_URL.trim()) : new URL(DEFAULT_CLERK_API)
  // Every call to the Backend API carries CLERK_SECRET_KEY.
  const clerkApiSafe = clerkApi !== null && maySendSecretTo(clerkApi)
  if (has('CLERK_API_URL')) {
    if (clerkApi && !clerkApiSafe)
      add('env.CLERK_API_URL', 'CLERK_API_URL', 'fail', plainHttp('CLERK_API_URL'), 'use https:// (or remove it)')
    else if (clerkApi) add('env.CLERK_API_URL', 'CLERK_API_URL', 'pass', `set (${hostOf(clerkApi)})`)
    else
      add(
        'env.CLERK_API_URL',
        'CLERK_API_URL',
        'fail',
        'not an http(s) URL',
        'remove it (the default is https://api.clerk.com) or set an http(s) URL',
      )
  }

  let jwtKeyModulus = null // CLERK_JWT_KEY's, compared with the instance's JWKS below
  if (has('CLERK_JWT_KEY')) {
    const raw = env.CLERK_JWT_KEY.trim()
    let ok = false
    for (const pem of [raw, `-----BEGIN PUBLIC KEY-----\n${raw}\n-----END PUBLIC KEY-----`]) {
      try {
        const key = crypto.createPublicKey(pem)
        ok = key.asymmetricKeyType === 'rsa'
        if (ok) {
          jwtKeyModulus = key.export({ format: 'jwk' }).n
          break
        }
      } catch {}
    }
    if (ok) add('env.CLERK_JWT_KEY', 'CLERK_JWT_KEY', 'pass', 'an RSA public key')
    else
      add(
        'env.CLERK_JWT_KEY',
        'CLERK_JWT_KEY',
        'fail',
        'not an RSA public key (PEM)',
        'copy the JWT public key (PEM) from the Clerk dashboard (API keys), or remove it: the JWKS is used then',
      )
  }

  const convexSecret = has('SESSION_AUDIO_CONVEX_SECRET') ? env.SESSION_AUDIO_CONVEX_SECRET : null
  const secretFix =
    'make one (`openssl rand -hex 32`) and set it on both sides: `vercel env add SESSION_AUDIO_CONVEX_SECRET` and `npx convex env set SESSION_AUDIO_CONVEX_SECRET …` (`npx session-audio init` prints the commands)'
  if (!convexSecret)
    add(
      'env.SESSION_AUDIO_CONVEX_SECRET',
      'SESSION_AUDIO_CONVEX_SECRET',
      'fail',
      'missing: every upload answers 503 config_missing',
      secretFix,
    )
  else if (convexSecret.length < 32)
    add(
      'env.SESSION_AUDIO_CONVEX_SECRET',
      'SESSION_AUDIO_CONVEX_SECRET',
      'fail',
      `too short (${convexSecret.length} characters; at least 32)`,
      secretFix,
    )
  else
    add(
      'env.SESSION_AUDIO_CONVEX_SECRET',
      'SESSION_AUDIO_CONVEX_SECRET',
      'pass',
      `set (${convexSecret.length} characters)`,
    )

  // Blob: OIDC (BLOB_STORE_ID + a token) and/or a read-write token, resolved as the route does.
  const blobCredentials = [] // { kind, headers }
  const rwToken = has('BLOB_READ_WRITE_TOKEN') ? env.BLOB_READ_WRITE_TOKEN.trim() : null
  const storeRaw = has('BLOB_STORE_ID') ? env.BLOB_STORE_ID.trim() : null
  if (!rwToken && !storeRaw) {
    add(
      'env.blob',
      'Blob credentials',
      'fail',
      'neither BLOB_STORE_ID (OIDC) nor BLOB_READ_WRITE_TOKEN is set: uploads answer 503 config_missing',
      'connect a Blob store to the Vercel project (Storage), then `vercel env pull .env.local`; or set BLOB_READ_WRITE_TOKEN',
    )
  }
  if (rwToken) {
    if (storeIdFromToken(rwToken)) {
      add('env.BLOB_READ_WRITE_TOKEN', 'BLOB_READ_WRITE_TOKEN', 'pass', `set (store ${storeIdFromToken(rwToken)})`)
      blobCredentials.push({ kind: 'read-write token', headers: { authorization: `Bearer ${rwToken}` } })
    } else
      add(
        'env.BLOB_READ_WRITE_TOKEN',
        'BLOB_READ_WRITE_TOKEN',
        'fail',
        'not a read-write token (vercel_blob_rw_<store>_…)',
        "copy the token from the Blob store's settings (Vercel dashboard, Storage)",
      )
  }
  if (storeRaw) {
    const storeId = normalizeStoreId(storeRaw)
    if (!storeId)
      add(
        'env.BLOB_STORE_ID',
        'BLOB_STORE_ID',
        'fail',
        'not a store id (store_<id>)',
        'copy the store id from the Vercel dashboard (Storage), or `vercel env pull .env.local`',
      )
    else {
      add('env.BLOB_STORE_ID', 'BLOB_STORE_ID', 'pass', `set (store ${storeId})`)
      const oidc = has('VERCEL_OIDC_TOKEN') ? env.VERCEL_OIDC_TOKEN.trim() : null
      const pullFix = 'pull a fresh one: `vercel env pull .env.local` (it is valid for 12 hours)'
      if (!oidc) {
        if (env.VERCEL === '1')
          add(
            'env.VERCEL_OIDC_TOKEN',
            'VERCEL_OIDC_TOKEN',
            'skip',
            'not checked: on Vercel each request carries its own OIDC token',
          )
        else
          add(
            'env.VERCEL_OIDC_TOKEN',
            'VERCEL_OIDC_TOKEN',
            rwToken ? 'skip' : 'fail',
            rwToken
              ? 'not set here: the read-write token serves requests without one'
              : 'missing: outside Vercel the route reaches Blob with VERCEL_OIDC_TOKEN',
            pullFix,
          )
      } else {
        const payload = jwtPayload(oidc)
        if (!payload) add('env.VERCEL_OIDC_TOKEN', 'VERCEL_OIDC_TOKEN', 'fail', 'not a JWT', pullFix)
        else if (typeof payload.exp === 'number' && payload.exp * 1000 <= Date.now())
          add(
            'env.VERCEL_OIDC_TOKEN',
            'VERCEL_OIDC_TOKEN',
            'fail',
            `expired ${new Date(payload.exp * 1000).toISOString()}`,
            pullFix,
          )
        else {
          add(
            'env.VERCEL_OIDC_TOKEN',
            'VERCEL_OIDC_TOKEN',
            'pass',
            typeof payload.exp === 'number' ? `set, valid until ${new Date(payload.exp * 1000).toISOString()}` : 'set',
          )
          blobCredentials.unshift({
            kind: 'OIDC token',
            headers: { authorization: `Bearer ${oidc}`, 'x-vercel-blob-store-id': storeId },
          })
        }
      }
    }
  }
  if (has('BLOB_WEBHOOK_PUBLIC_KEY') || (storeRaw && !rwToken)) {
    let ok = false
    try {
      ok = crypto.createPublicKey(env.BLOB_WEBHOOK_PUBLIC_KEY ?? '').asymmetricKeyType === 'ed25519'
    } catch {}
    if (!has('BLOB_WEBHOOK_PUBLIC_KEY'))
      add(
        'env.BLOB_WEBHOOK_PUBLIC_KEY',
        'BLOB_WEBHOOK_PUBLIC_KEY',
        'fail',
        'missing: presigned uploads (recordings over 4.5 MB, over OIDC) answer 503 config_missing',
        'Vercel sets it when a Blob store is connected; `vercel env pull .env.local` copies it here',
      )
    else if (!ok)
      add(
        'env.BLOB_WEBHOOK_PUBLIC_KEY',
        'BLOB_WEBHOOK_PUBLIC_KEY',
        'fail',
        'not an Ed25519 public key (SPKI PEM)',
        'copy it again from the Vercel project (`vercel env pull .env.local`); keep its line breaks',
      )
    else add('env.BLOB_WEBHOOK_PUBLIC_KEY', 'BLOB_WEBHOOK_PUBLIC_KEY', 'pass', 'an Ed25519 public key')
  }
  // The origin the route's uploads land on, which Convex must allow (the template's
  // allowedOrigins): the store's host, or in loopback mode the local emulator's (the API URL's).
  const routeStoreId = (storeRaw && normalizeStoreId(storeRaw)) || (rwToken && storeIdFromToken(rwToken)) || null
  const routeBlobOrigin = (() => {
    if (!routeStoreId) return null
    const api = has('VERCEL_BLOB_API_URL') ? serviceUrl(env.VERCEL_BLOB_API_URL.trim()) : null
    if (api && ['1', 'true'].includes(env.SESSION_AUDIO_ALLOW_LOOPBACK_UPSTREAM)) return api.origin
    const access = env.SESSION_AUDIO_BLOB_ACCESS === 'public' ? 'public' : 'private'
    return `https://${routeStoreId.toLowerCase()}.${access}.blob.vercel-storage.com`
  })()
  const blobApi = has('VERCEL_BLOB_API_URL') ? serviceUrl(env.VERCEL_BLOB_API_URL.trim()) : new URL(DEFAULT_BLOB_API)
  if (has('VERCEL_BLOB_API_URL') && !blobApi)
    add(
      'env.VERCEL_BLOB_API_URL',
      'VERCEL_BLOB_API_URL',
      'fail',
      'not an http(s) URL',
      'remove it (the default is https://vercel.com/api/blob)',
    )
  // Every call to the Blob API carries a credential.
  else if (blobApi && !maySendSecretTo(blobApi))
    add(
      'env.VERCEL_BLOB_API_URL',
      'VERCEL_BLOB_API_URL',
      'fail',
      plainHttp('VERCEL_BLOB_API_URL'),
      'use https:// (or remove it: the default is https://vercel.com/api/blob)',
    )

  for (const [name, why] of Object.entries(UNCHECKED)) {
    if (has(name)) add(`env.${name}`, name, 'skip', `set; not checked: ${why}`)
  }
  if (has('CLERK_AUTHORIZED_PARTIES')) {
    // The route compares each entry with the token's `azp` as it is: Clerk's azp is an origin.
    const entries = env.CLERK_AUTHORIZED_PARTIES.split(',')
      .map((e) => e.trim())
      .filter(Boolean)
    const bad = entries.findIndex((e) => serviceUrl(e)?.origin !== e)
    if (bad >= 0)
      add(
        'env.CLERK_AUTHORIZED_PARTIES',
        'CLERK_AUTHORIZED_PARTIES',
        'fail',
        `entry ${bad + 1} is not an origin (scheme://host[:port], no path, no trailing slash): a token's \`azp\` never equals it, so sign-ins from there answer 401`,
        'list the origins your app is served from, comma-separated (https://app.example.com), or remove it',
      )
    else add('env.CLERK_AUTHORIZED_PARTIES', 'CLERK_AUTHORIZED_PARTIES', 'pass', `${entries.length} origin(s)`)
  }
  // The route's own parser on the whole configuration (the installed addon), then per variable
  // whose rules only it knows.
  const verdict = routeVerdict(env)
  if (verdict.unavailable)
    add(
      'route.config',
      "the route's own configuration check",
      'skip',
      `not checked: the session-audio addon for this platform is not installed here (${verdict.unavailable}); the checks above apply the same rules, except for ${PARSED_BY_ROUTE.join(', ')}`,
    )
  else if (verdict.error)
    add(
      'route.config',
      "the route's own configuration check",
      'fail',
      `the route answers every request 503 with: ${verdict.error}`,
      'fix the variable it names (README, Configuration)',
    )
  else add('route.config', "the route's own configuration check", 'pass', 'the addon accepts this configuration')
  for (const name of PARSED_BY_ROUTE) {
    if (!has(name)) continue
    if (verdict.unavailable)
      add(`env.${name}`, name, 'skip', "set; not checked: only the route's parser (the addon) knows its rules")
    else if (verdict.error?.includes(name))
      add(
        `env.${name}`,
        name,
        'fail',
        `the route refuses it: ${verdict.error}`,
        `fix it, or remove it for the default (README, Configuration)`,
      )
    else if (verdict.error)
      add(`env.${name}`, name, 'skip', `set; not checked: the route stopped at another setting first (above)`)
    else add(`env.${name}`, name, 'pass', "set; the route's parser accepts it")
  }
  const badSettings = SETTINGS.filter(
    ([name, valid]) => env[name] !== undefined && env[name] !== '' && !valid(env[name]),
  )
  const setSettings = SETTINGS.filter(([name]) => env[name] !== undefined && env[name] !== '')
  if (badSettings.length) {
    for (const [name, , want] of badSettings) {
      add(
        `env.${name}`,
        name,
        'fail',
        `not ${want}: every request answers 503 config_invalid`,
        `set it to ${want}, or remove it for the default (README, Configuration)`,
      )
    }
  } else if (setSettings.length) {
    add('env.settings', 'other session-audio settings', 'pass', `${setSettings.map(([n]) => n).join(', ')} well-formed`)
  }

  const sweepSecret = has('SESSION_AUDIO_SWEEP_SECRET') ? env.SESSION_AUDIO_SWEEP_SECRET : null
  if (!sweepSecret)
    add(
      'env.SESSION_AUDIO_SWEEP_SECRET',
      'SESSION_AUDIO_SWEEP_SECRET',
      'skip',
      'not set: only `session-audio sweep` needs it',
    )
  else add('env.SESSION_AUDIO_SWEEP_SECRET', 'SESSION_AUDIO_SWEEP_SECRET', 'pass', 'set')

  // ---- 2. Clerk: the key, and the JWT template ----
  let clerk = null // { base, headers } once Clerk accepted the key
  let templateOk = false
  let convexReachable = false
  const template = has('SESSION_AUDIO_CONVEX_TEMPLATE') ? env.SESSION_AUDIO_CONVEX_TEMPLATE.trim() : 'convex'
  if (!clerkKeyOk || !clerkApiSafe) {
    add(
      'clerk.key',
      'Clerk accepts the secret key',
      'skip',
      clerkApi && !clerkApiSafe
        ? `not checked: the key was not sent (${plainHttp('CLERK_API_URL')})`
        : 'not checked: CLERK_SECRET_KEY or CLERK_API_URL is missing or malformed (above)',
    )
    add('clerk.template', `Clerk JWT template "${template}"`, 'skip', 'not checked: no usable Clerk secret key')
  } else {
    const clerkHeaders = { authorization: `Bearer ${env.CLERK_SECRET_KEY.trim()}`, accept: 'application/json' }
    const base = clerkApi.href.replace(/\/$/, '')
    const jwks = await call(`${base}/v1/jwks`, { headers: clerkHeaders })
    let keyOk = false
    if (jwks.error)
      add(
        'clerk.key',
        'Clerk accepts the secret key',
        'fail',
        `Clerk unreachable at ${hostOf(clerkApi)}: ${jwks.error}`,
        'check the network, and CLERK_API_URL if you set it',
      )
    else if (jwks.res.status === 401 || jwks.res.status === 403)
      add(
        'clerk.key',
        'Clerk accepts the secret key',
        'fail',
        `Clerk refused CLERK_SECRET_KEY (HTTP ${jwks.res.status}): every request answers 503`,
        "copy this instance's Secret key again from the Clerk dashboard (API keys); a development key does not work on a production instance",
      )
    else if (jwks.res.status !== 200 || !Array.isArray(jwks.body?.keys) || !jwks.body.keys.length)
      add(
        'clerk.key',
        'Clerk accepts the secret key',
        'fail',
        `the JWKS answered HTTP ${jwks.res.status} without keys`,
        'check CLERK_API_URL (unset it for Clerk itself)',
      )
    else {
      keyOk = true
      clerk = { base, headers: clerkHeaders }
      add('clerk.key', 'Clerk accepts the secret key', 'pass', `JWKS with ${jwks.body.keys.length} key(s)`)
      if (jwtKeyModulus) {
        // The networkless key must be one this instance signs with, or every session token is refused.
        if (jwks.body.keys.some((k) => k?.n === jwtKeyModulus)) {
          add('clerk.jwtKey', "CLERK_JWT_KEY is this instance's key", 'pass', 'it is in the JWKS')
        } else {
          add(
            'clerk.jwtKey',
            "CLERK_JWT_KEY is this instance's key",
            'fail',
            "it is not in this instance's JWKS: every session token answers 401",
            'copy the JWT public key of the same instance as CLERK_SECRET_KEY (Clerk dashboard, API keys), or remove CLERK_JWT_KEY',
          )
        }
      }
    }
    if (!keyOk)
      add('clerk.template', `Clerk JWT template "${template}"`, 'skip', 'not checked: Clerk did not accept the key')
    else {
      const list = await call(`${base}/v1/jwt_templates`, { headers: clerkHeaders })
      const templates = Array.isArray(list.body) ? list.body : Array.isArray(list.body?.data) ? list.body.data : null
      if (list.error || list.res.status !== 200 || !templates) {
        add(
          'clerk.template',
          `Clerk JWT template "${template}"`,
          'skip',
          `not checked: Clerk did not list the JWT templates (${list.error ?? `HTTP ${list.res.status}`})`,
        )
      } else {
        const found = templates.find((t) => t?.name === template)
        const fix = `create it in the Clerk dashboard (JWT templates → New template → Convex), named "${template}"${has('SESSION_AUDIO_CONVEX_TEMPLATE') ? ', or set SESSION_AUDIO_CONVEX_TEMPLATE to the name of yours' : ''}`
        if (!found)
          add(
            'clerk.template',
            `Clerk JWT template "${template}"`,
            'fail',
            `no template named "${template}" (found: ${templates.map((t) => JSON.stringify(t?.name)).join(', ') || 'none'}): every request answers 503`,
            fix,
          )
        else if (
          found.claims &&
          typeof found.claims === 'object' &&
          'aud' in found.claims &&
          found.claims.aud !== 'convex'
        )
          add(
            'clerk.template',
            `Clerk JWT template "${template}"`,
            'fail',
            'its `aud` claim is not "convex": Convex refuses its tokens',
            'set the claim `"aud": "convex"` in the template (the Convex preset does)',
          )
        else {
          templateOk = true
          add('clerk.template', `Clerk JWT template "${template}"`, 'pass', 'exists')
        }
      }
    }
  }

  // ---- 3. Convex: the template functions deployed, the sweep secret shared ----
  const fnName = (variable, fallback) => (has(variable) ? env[variable].trim() : fallback)
  const functions = [
    {
      kind: 'query',
      path: fnName('SESSION_AUDIO_GET_QUERY', 'listeningSessions:getForAudio'),
      args: { sessionId: 'doctor' },
    },
    { kind: 'query', path: fnName('SESSION_AUDIO_ENTITLEMENTS_QUERY', 'entitlements:getForCurrentUser'), args: {} },
    {
      kind: 'mutation',
      path: fnName('SESSION_AUDIO_ATTACH_MUTATION', 'listeningSessions:attachAudio'),
      // Valid arguments, no user: the template refuses before it reads anything.
      args: {
        sessionId: 'doctor',
        audioUrl: 'https://doctor.invalid/x',
        pathname: 'doctor',
        contentType: 'audio/webm',
        sizeBytes: 1,
        durationMs: 1,
      },
    },
  ]
  const attachedPath = fnName('SESSION_AUDIO_ATTACHED_QUERY', 'listeningSessions:attachedAudio')
  const convexCall = (kind, fn, args) =>
    call(`${convexUrl.href.replace(/\/$/, '')}/api/${kind}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ path: fn, format: 'json', args: [args] }),
    })
  const deployFix =
    'copy the template into convex/ (`npx session-audio init`) and deploy it: `npx convex deploy` (or `npx convex dev`)'
  const notFound = (r) =>
    r.body?.status === 'error' && /could not find (public )?function/i.test(r.body.errorMessage ?? '')
  if (!convexUrl) {
    add('convex.reachable', 'Convex reachable', 'skip', 'not checked: NEXT_PUBLIC_CONVEX_URL is missing or malformed')
  } else {
    let reachable = true
    const results = []
    for (const fn of functions) {
      const r = await convexCall(fn.kind, fn.path, fn.args)
      const title = `Convex function ${fn.path}`
      if (r.error || (r.res.status !== 200 && !notFound(r))) {
        add(
          'convex.reachable',
          'Convex reachable',
          'fail',
          `Convex unreachable at ${hostOf(convexUrl)}: ${r.error ?? `HTTP ${r.res.status}`}`,
          'check NEXT_PUBLIC_CONVEX_URL (the deployment URL, https://<deployment>.convex.cloud)',
        )
        reachable = false
        break
      }
      if (notFound(r))
        results.push([`convex.function.${fn.path}`, title, 'fail', 'not deployed on this deployment', deployFix])
      else if (r.body?.status === 'error' && r.body.errorData?.code === 'unauthenticated')
        results.push([
          `convex.function.${fn.path}`,
          title,
          'pass',
          'deployed (refuses an anonymous caller, as the template does)',
        ])
      else
        results.push([
          `convex.function.${fn.path}`,
          title,
          'fail',
          `answered an anonymous call ${r.body?.status === 'success' ? 'with a value' : 'with another error'}, not the template's \`unauthenticated\``,
          `deploy the template's version: ${deployFix}`,
        ])
    }
    if (reachable) {
      convexReachable = true
      add('convex.reachable', 'Convex reachable', 'pass', hostOf(convexUrl))
      for (const r of results) add(...r)
      // The sweep's query: the real secret (if set here, and the URL may carry it) or a random
      // one. `forbidden` proves the function is there; with the real secret it also says the two
      // sides differ.
      const sendSweep = sweepSecret !== null && maySendSecretTo(convexUrl)
      const probe = sendSweep ? sweepSecret : crypto.randomBytes(24).toString('hex')
      const r = await convexCall('query', attachedPath, { secret: probe, blobs: [] })
      const forbidden = r.body?.status === 'error' && r.body.errorData?.code === 'forbidden'
      const title = `Convex function ${attachedPath} (sweep)`
      if (r.error)
        add(`convex.function.${attachedPath}`, title, 'fail', `no answer: ${r.error}`, 'check NEXT_PUBLIC_CONVEX_URL')
      else if (notFound(r))
        add(`convex.function.${attachedPath}`, title, 'fail', 'not deployed on this deployment', deployFix)
      else if (!sendSweep) {
        if (forbidden) add(`convex.function.${attachedPath}`, title, 'pass', 'deployed (refuses a wrong secret)')
        else
          add(
            `convex.function.${attachedPath}`,
            title,
            'fail',
            "answered a random secret without the template's `forbidden`",
            `deploy the template's version: ${deployFix}`,
          )
        if (!sweepSecret)
          add(
            'convex.sweepSecret',
            'SESSION_AUDIO_SWEEP_SECRET shared with Convex',
            'skip',
            'not checked: not set here (only `session-audio sweep` needs it)',
          )
        else
          add(
            'convex.sweepSecret',
            'SESSION_AUDIO_SWEEP_SECRET shared with Convex',
            'fail',
            `not checked: the secret was not sent (${plainHttp('NEXT_PUBLIC_CONVEX_URL')})`,
            "use the deployment's https:// URL (https://<deployment>.convex.cloud)",
          )
      } else {
        add(`convex.function.${attachedPath}`, title, 'pass', 'deployed')
        if (r.body?.status === 'success')
          add(
            'convex.sweepSecret',
            'SESSION_AUDIO_SWEEP_SECRET shared with Convex',
            'pass',
            'Convex accepts the value set here',
          )
        else if (forbidden)
          add(
            'convex.sweepSecret',
            'SESSION_AUDIO_SWEEP_SECRET shared with Convex',
            'fail',
            'Convex refuses the value set here: the two sides differ, or it is not set on Convex',
            'set the same value on both sides: `npx convex env set SESSION_AUDIO_SWEEP_SECRET …` (add --prod for production)',
          )
        else
          add(
            'convex.sweepSecret',
            'SESSION_AUDIO_SWEEP_SECRET shared with Convex',
            'fail',
            `unexpected answer (${r.body?.errorData?.code ?? r.body?.status ?? `HTTP ${r.res.status}`})`,
            `deploy the template's version: ${deployFix}`,
          )
      }
    }
  }
  await attachSetupCheck()
  await asUserCheck()

  /**
   * The template's `checkAttachSetup`, asked with a probe signed here (see the top): whether Convex
   * holds this SESSION_AUDIO_CONVEX_SECRET, then whether it allows the route's Blob store.
   */
  async function attachSetupCheck() {
    const id = 'convex.attachSecret'
    const title = 'SESSION_AUDIO_CONVEX_SECRET shared with Convex'
    const storeId = 'convex.blobStore'
    const storeTitle = "Convex allows the route's Blob store"
    const skipStore = (why) => add(storeId, storeTitle, 'skip', `not checked: ${why}`)
    const why = !convexReachable
      ? 'Convex is not reachable (above)'
      : !convexSecret || convexSecret.length < 32
        ? 'SESSION_AUDIO_CONVEX_SECRET is missing or too short here (above)'
        : null
    if (why) {
      add(id, title, 'skip', `not checked: ${why}`)
      return skipStore(why)
    }
    const probePath = `${functions[2].path.split(':')[0]}:checkAttachSetup`
    const blobOrigin = routeBlobOrigin ?? ''
    const r = await convexCall('query', probePath, {
      blobOrigin,
      signature: sign(convexSecret, probeMessage(blobOrigin)),
    })
    const answer = r.body?.status === 'success' ? r.body.value : null
    const secretFix =
      'set the same value on both sides: `npx convex env set SESSION_AUDIO_CONVEX_SECRET …` and where the route runs (`vercel env add SESSION_AUDIO_CONVEX_SECRET`); add --prod for the production deployment'
    if (r.error) {
      add(id, title, 'fail', `no answer from Convex: ${r.error}`, 'check NEXT_PUBLIC_CONVEX_URL')
      return skipStore('Convex did not answer')
    }
    if (notFound(r)) {
      add(
        id,
        title,
        'fail',
        `${probePath} is not deployed: the deployed template predates this check (or is not session-audio's)`,
        `update your listeningSessions.ts from the template (\`npx session-audio init\` shows the diff; --force replaces it), then \`npx convex deploy\``,
      )
      return skipStore(`${probePath} is not deployed`)
    }
    if (answer?.secret === 'mismatch') {
      add(
        id,
        title,
        'fail',
        'Convex refused a signature made with the value set here: the two sides hold different secrets, or Convex has none of at least 32 characters, which the template answers alike (uploads answer 503 attach_secret_mismatch)',
        secretFix,
      )
      return skipStore('Convex answers it only to a caller that holds its secret')
    }
    if (answer?.secret !== 'match') {
      add(
        id,
        title,
        'fail',
        `unexpected answer from ${probePath} (${r.body?.errorData?.code ?? r.body?.status ?? `HTTP ${r.res.status}`})`,
        `deploy the template's version: ${deployFix}`,
      )
      return skipStore(`${probePath} gave no usable answer`)
    }
    add(id, title, 'pass', 'Convex verified a signature made here: both sides hold the same secret')
    if (!routeBlobOrigin) return skipStore('no Blob store is configured here (above)')
    const storeFix = `\`npx convex env set SESSION_AUDIO_BLOB_STORE_ID store_${routeStoreId}\` (the store the route uses; add --prod for production)`
    if (answer.store === 'match') add(storeId, storeTitle, 'pass', `it allows ${routeBlobOrigin}`)
    else if (answer.store === 'missing')
      add(
        storeId,
        storeTitle,
        'fail',
        'Convex has neither SESSION_AUDIO_BLOB_STORE_ID nor SESSION_AUDIO_BLOB_HOSTS (or one is malformed): uploads answer 503 config_missing',
        storeFix,
      )
    else
      add(
        storeId,
        storeTitle,
        'fail',
        `Convex does not allow ${routeBlobOrigin}, where the route stores uploads: attachAudio refuses every upload (invalid_audio_url)`,
        `${storeFix}; or fix BLOB_STORE_ID here if it is this side that names the wrong store`,
      )
  }

  /** `--as-user`: attachAudio with arguments signed here, as the route signs them (see the top). */
  async function asUserCheck() {
    const id = 'convex.asUser'
    const title = `Convex accepts the "${template}" token and attachAudio verifies the route's signature`
    const attachPath = functions[2].path
    if (!opts.asUser) {
      return add(
        id,
        title,
        'skip',
        `not checked: ${attachPath} checks the caller before the signature, so only a signed-in user reaches that check. Rerun with --as-user <Clerk user id> (a test user) to check it with a short-lived Clerk session; otherwise the first upload answers 503 convex_auth_rejected if Convex does not accept the template's tokens`,
      )
    }
    const missing = [
      [!convexSecret || convexSecret.length < 32, 'SESSION_AUDIO_CONVEX_SECRET is missing or too short here'],
      [!clerk, 'Clerk did not accept the key'],
      [!templateOk, `the JWT template "${template}" was not found`],
      [!convexReachable, 'Convex is not reachable'],
      // The check sends a user's Convex token.
      [convexUrl && !maySendSecretTo(convexUrl), `no token was sent: ${plainHttp('NEXT_PUBLIC_CONVEX_URL')}`],
    ].find(([bad]) => bad)
    if (missing) return add(id, title, 'skip', `not checked: ${missing[1]} (above)`)
    const created = await call(`${clerk.base}/v1/sessions`, {
      method: 'POST',
      headers: { ...clerk.headers, 'content-type': 'application/json' },
      body: JSON.stringify({ user_id: opts.asUser }),
    })
    const sid = created.body?.id
    if (created.error || created.res.status !== 200 || typeof sid !== 'string') {
      return add(
        id,
        title,
        'skip',
        `not checked: Clerk did not open a test session for the user (${created.error ?? `HTTP ${created.res.status}`}; it needs an existing user id, and Clerk may refuse this on a production instance)`,
      )
    }
    try {
      const token = await call(
        `${clerk.base}/v1/sessions/${encodeURIComponent(sid)}/tokens/${encodeURIComponent(template)}`,
        { method: 'POST', headers: clerk.headers },
      )
      const jwt = token.body?.jwt
      if (token.error || token.res.status !== 200 || typeof jwt !== 'string') {
        return add(
          id,
          title,
          'fail',
          `Clerk gave no "${template}" token for the session (${token.error ?? `HTTP ${token.res.status}`})`,
          `check the JWT template "${template}" in the Clerk dashboard`,
        )
      }
      const expiresAt = Date.now() + 5 * 60_000
      const args = {
        sessionId: 'session-audio-doctor',
        audioUrl: 'https://doctor.invalid/listening-sessions/session-audio-doctor/probe.webm',
        pathname: 'listening-sessions/session-audio-doctor/probe.webm',
        contentType: 'audio/webm',
        sizeBytes: 1,
        durationMs: 1,
        expiresAt,
      }
      const signature = sign(convexSecret, attachMessage(args))
      const r = await call(`${convexUrl.href.replace(/\/$/, '')}/api/mutation`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${jwt}` },
        body: JSON.stringify({ path: attachPath, format: 'json', args: [{ ...args, signature }] }),
      })
      const code = r.body?.errorData?.code
      if (r.error) return add(id, title, 'fail', `no answer from Convex: ${r.error}`, 'check NEXT_PUBLIC_CONVEX_URL')
      if (r.res.status === 401 || r.res.status === 403) {
        return add(
          id,
          title,
          'fail',
          `Convex refused the "${template}" token from Clerk (HTTP ${r.res.status}): every request answers 503 convex_auth_rejected`,
          'set CLERK_JWT_ISSUER_DOMAIN on Convex to your Clerk Frontend API URL (`npx convex env set CLERK_JWT_ISSUER_DOMAIN https://…`), keep convex/auth.config.ts from the template (applicationID "convex"), and deploy',
        )
      }
      if (code === 'session_not_found')
        return add(
          id,
          title,
          'pass',
          'Convex verified a signature made here: both sides hold the same secret, and its Blob store is set',
        )
      if (code === 'invalid_attach_signature' && r.body.errorData.reason === 'mismatch') {
        return add(
          id,
          title,
          'fail',
          'Convex refused a signature made with the value set here: the two sides hold different secrets, or Convex has none of at least 32 characters, which the template answers alike (uploads answer 503 attach_secret_mismatch)',
          'set the same value on both sides: `npx convex env set SESSION_AUDIO_CONVEX_SECRET …` and where the route runs (`vercel env add SESSION_AUDIO_CONVEX_SECRET`)',
        )
      }
      if (code === 'attach_not_configured') {
        return add(
          id,
          title,
          'fail',
          'Convex verified the signature (both sides hold the same secret) but lacks SESSION_AUDIO_BLOB_STORE_ID / SESSION_AUDIO_BLOB_HOSTS: uploads answer 503 config_missing',
          '`npx convex env set SESSION_AUDIO_BLOB_STORE_ID store_…` (add --prod for production)',
        )
      }
      return add(
        id,
        title,
        'fail',
        `unexpected answer (${code ?? r.body?.status ?? `HTTP ${r.res.status}`})`,
        `deploy the template's version of ${attachPath}: ${deployFix}`,
      )
    } finally {
      await call(`${clerk.base}/v1/sessions/${encodeURIComponent(sid)}/revoke`, {
        method: 'POST',
        headers: clerk.headers,
      })
    }
  }

  // ---- 4. Blob: each configured credential lists ----
  const blobApiSafe = blobApi !== null && maySendSecretTo(blobApi)
  if (!blobApi)
    add('blob.access', 'Blob accepts the credential', 'skip', 'not checked: VERCEL_BLOB_API_URL is malformed')
  else if (!blobApiSafe)
    add(
      'blob.access',
      'Blob accepts the credential',
      'skip',
      `not checked: no credential was sent (${plainHttp('VERCEL_BLOB_API_URL')})`,
    )
  else if (!blobCredentials.length)
    add('blob.access', 'Blob accepts the credential', 'skip', 'not checked: no usable Blob credential (above)')
  for (const cred of blobApiSafe ? blobCredentials : []) {
    const url = new URL(blobApi.href)
    url.searchParams.set('limit', '1')
    url.searchParams.set('prefix', 'listening-sessions/')
    const r = await call(url, { headers: { ...cred.headers, 'x-api-version': '12' } })
    const id = `blob.${cred.kind === 'OIDC token' ? 'oidc' : 'readWrite'}`
    const title = `Blob accepts the ${cred.kind}`
    if (r.error)
      add(
        id,
        title,
        'fail',
        `Blob unreachable at ${hostOf(blobApi)}: ${r.error}`,
        'check the network, and VERCEL_BLOB_API_URL if you set it',
      )
    else if (r.res.status === 200 && Array.isArray(r.body?.blobs))
      add(id, title, 'pass', `listed the store (${hostOf(blobApi)})`)
    else if (r.res.status === 401 || r.res.status === 403) {
      add(
        id,
        title,
        'fail',
        `Blob refused the ${cred.kind} (HTTP ${r.res.status}${r.body?.error?.code ? ` ${r.body.error.code}` : ''})`,
        cred.kind === 'OIDC token'
          ? 'pull the environment again (`vercel env pull .env.local`): the token and BLOB_STORE_ID must belong to the same project and store'
          : "copy the read-write token again from the Blob store's settings",
      )
    } else
      add(
        id,
        title,
        'fail',
        `unexpected answer HTTP ${r.res.status}`,
        'check VERCEL_BLOB_API_URL (unset it for Vercel Blob itself)',
      )
  }

  // Blob calls the route back there (blob.upload-completed): it must answer from where Blob is.
  if (has('VERCEL_BLOB_CALLBACK_URL')) {
    const id = 'env.VERCEL_BLOB_CALLBACK_URL'
    const title = 'VERCEL_BLOB_CALLBACK_URL reachable'
    const fix = "set it to this deployment's public URL (https://…), or remove it: on Vercel it is derived"
    const callback = serviceUrl(env.VERCEL_BLOB_CALLBACK_URL.trim())
    if (!callback) add(id, title, 'fail', 'not an http(s) URL: uploads get no completion webhook', fix)
    else {
      const r = await call(callback)
      if (r.error)
        add(
          id,
          title,
          'fail',
          `no answer from ${hostOf(callback)} here (${r.error}): Blob's upload-completed webhook cannot reach it either, so only the browser's completion attaches uploads`,
          fix,
        )
      else
        add(
          id,
          title,
          'pass',
          `${hostOf(callback)} answered (HTTP ${r.res.status}) from here; Blob calls it from the internet, so a private or loopback address works only with a local Blob`,
        )
    }
  }

  // ---- 5. The project: the route file and next.config ----
  const project = findProject(cwd)
  if (project.why) {
    add('project', 'Next.js project', 'skip', `not checked: ${project.why}`)
  } else {
    const route = existingRouteFile(project, opts.route)
    const rel = (f) => path.relative(project.root, f)
    if (!route)
      add(
        'project.route',
        'route file',
        'fail',
        `no ${opts.route ?? 'app/api/listening-sessions/[sessionId]/audio/route.ts'}`,
        'run `npx session-audio init` (or --route for your path)',
      )
    else if (!fs.readFileSync(route, 'utf8').includes(PACKAGE))
      add(
        'project.route',
        'route file',
        'fail',
        `${rel(route)} does not use session-audio`,
        'export the handlers from session-audio (README, "The route file")',
      )
    else add('project.route', 'route file', 'pass', rel(route))
    if (!project.nextConfig)
      add(
        'project.nextConfig',
        'next.config serverExternalPackages',
        'fail',
        `no ${NEXT_CONFIG_NAMES.join(' / ')}`,
        'run `npx session-audio init`',
      )
    else {
      const edit = addServerExternalPackage(fs.readFileSync(project.nextConfig, 'utf8'))
      if (edit.status === 'present')
        add(
          'project.nextConfig',
          'next.config serverExternalPackages',
          'pass',
          `${rel(project.nextConfig)} lists '${PACKAGE}'`,
        )
      else if (edit.status === 'edited')
        add(
          'project.nextConfig',
          'next.config serverExternalPackages',
          'fail',
          `${rel(project.nextConfig)} does not list '${PACKAGE}': Next.js tries to bundle the native addon`,
          "run `npx session-audio init`, or add `serverExternalPackages: ['session-audio']`",
        )
      else
        add(
          'project.nextConfig',
          'next.config serverExternalPackages',
          'skip',
          `not checked: ${edit.why}; make sure serverExternalPackages includes '${PACKAGE}'`,
        )
    }
  }

  // ---- Report ----
  const summary = { pass: 0, fail: 0, skip: 0 }
  for (const c of checks) summary[c.status]++
  const ok = summary.fail === 0
  if (opts.json) {
    out.write(`${JSON.stringify({ ok, envFiles: files, checks, summary }, null, 2)}\n`)
  } else {
    const lines = [
      `session-audio doctor: ${cwd}`,
      `  environment: the process${files.length ? `, ${files.join(', ')}` : ''} (values are never shown)`,
      '',
    ]
    for (const c of checks) {
      const mark = c.status === 'pass' ? '✓' : c.status === 'fail' ? '✗' : '–'
      lines.push(`  ${mark} ${c.title}: ${c.detail}`)
      if (c.fix) lines.push(`      fix: ${c.fix}`)
    }
    lines.push('', `${summary.pass} passed, ${summary.fail} failed, ${summary.skip} not checked`)
    out.write(`${lines.join('\n')}\n`)
  }
  return ok ? 0 : 1
}
