// `npx session-audio doctor` against the local stack (Clerk-, Convex- and Blob-compatible servers on
// loopback, the Convex one running the real template): a fake Next.js project set up by `init`,
// its environment in `.env.local` as `vercel env pull` writes it, and the CLI run as a child
// process with nothing else in its environment. All green when configured right; each
// misconfiguration is a failed check with its fix and exit code 1.
import { execFile } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startLocalStack } from '../stack/local.mjs'
import { maySendSecretTo } from '../bin/doctor.mjs'

const exec = promisify(execFile)
const repo = path.resolve(__dirname, '..')
const cli = path.join(repo, 'bin', 'session-audio.mjs')
const SWEEP = 'sweep-secret-for-the-doctor-spec'

type Check = { id: string; title: string; status: 'pass' | 'fail' | 'skip'; detail: string; fix?: string }
type Report = {
  ok: boolean
  envFiles: string[]
  checks: Check[]
  summary: { pass: number; fail: number; skip: number }
}

let stack: Awaited<ReturnType<typeof startLocalStack>>
let work: string
let app: string
let baseEnv: Record<string, string>
const servers: http.Server[] = []

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'sa-doctor-'))
  stack = await startLocalStack({ dir: path.join(work, 'stack'), rateLimit: 0 })
  stack.convex.env.SESSION_AUDIO_SWEEP_SECRET = SWEEP
  baseEnv = { ...stack.env, SESSION_AUDIO_SWEEP_SECRET: SWEEP }
  app = fakeApp('app')
  await exec('node', [cli, 'init'], { cwd: app, env: { PATH: process.env.PATH! } })
})
afterAll(async () => {
  await stack?.close()
  for (const s of servers) s.close()
  fs.rmSync(work, { recursive: true, force: true })
})

function fakeApp(name: string) {
  const root = path.join(work, name)
  fs.mkdirSync(path.join(root, 'app'), { recursive: true })
  fs.writeFileSync(path.join(root, 'package.json'), JSON.stringify({ dependencies: { next: '16.0.0' } }))
  fs.writeFileSync(path.join(root, 'tsconfig.json'), '{}\n')
  return root
}

/** `.env.local` as `vercel env pull` writes it: one `KEY="value"` a line, newlines as `\n`. */
const dotenv = (env: Record<string, string | undefined>) =>
  Object.entries(env)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
    .join('\n') + '\n'

/**
 * Run doctor in `cwd` with `.env.local` = the stack's environment with `changes` (undefined
 * removes a variable) and `processEnv` as the process's own variables.
 */
async function doctor(
  changes: Record<string, string | undefined> = {},
  { args = [] as string[], cwd = app, processEnv = {} as Record<string, string> } = {},
) {
  const env = { ...baseEnv, ...changes }
  fs.writeFileSync(path.join(cwd, '.env.local'), dotenv(env))
  let result: { code: number; stdout: string; stderr: string }
  try {
    const { stdout, stderr } = await exec('node', [cli, 'doctor', ...args], {
      cwd,
      env: { PATH: process.env.PATH!, ...processEnv },
    })
    result = { code: 0, stdout, stderr }
  } catch (e: any) {
    result = { code: e.code, stdout: e.stdout, stderr: e.stderr }
  }
  // Whatever the run checked, passing or failing, no secret it was given shows in its output.
  for (const value of secretsIn({ ...env, ...processEnv })) {
    expect(result.stdout, 'a secret in stdout').not.toContain(value)
    expect(result.stderr, 'a secret in stderr').not.toContain(value)
  }
  return result
}

/** The variables whose values are secrets (the others, URLs, ids and public keys, may be shown). */
const SECRET_NAMES = [
  'CLERK_SECRET_KEY',
  'SESSION_AUDIO_CONVEX_SECRET',
  'SESSION_AUDIO_SWEEP_SECRET',
  'VERCEL_OIDC_TOKEN',
  'BLOB_READ_WRITE_TOKEN',
]
/** The secret values in `env` (long enough not to match words of the report by chance, as `short` would). */
const secretsIn = (env: Record<string, string | undefined>) =>
  SECRET_NAMES.map((name) => env[name]).filter((v): v is string => typeof v === 'string' && v.length >= 8)

async function doctorJson(
  changes: Record<string, string | undefined> = {},
  options: Parameters<typeof doctor>[1] = {},
) {
  const r = await doctor(changes, { ...options, args: ['--json', ...(options.args ?? [])] })
  const report: Report = JSON.parse(r.stdout)
  const check = (id: string) => {
    const c = report.checks.find((c) => c.id === id)
    if (!c) throw new Error(`no check ${id} in ${report.checks.map((c) => c.id).join(', ')}`)
    return c
  }
  return { ...r, report, check }
}

/** The secrets the report must never show. */
const secretValues = () => [
  baseEnv.CLERK_SECRET_KEY,
  baseEnv.SESSION_AUDIO_CONVEX_SECRET,
  baseEnv.VERCEL_OIDC_TOKEN,
  SWEEP,
  stack.blob.token,
]

/** The run failed (exit 1) at check `id`, its detail and its fix saying what they must. */
function expectFailed(run: { code: number; check: (id: string) => Check }, id: string, detail: string, fix?: string) {
  expect(run.code).toBe(1)
  expect(run.check(id)).toMatchObject({
    status: 'fail',
    detail: expect.stringContaining(detail),
    ...(fix === undefined ? {} : { fix: expect.stringContaining(fix) }),
  })
}

/**
 * Run `fn` with the Convex deployment's variables changed as `npx convex env set` / `unset` would
 * (undefined removes one), then put them back.
 */
async function withConvexEnv<T>(changes: Record<string, string | undefined>, fn: () => Promise<T>): Promise<T> {
  const env: Record<string, string | undefined> = stack.convex.env
  const apply = (vars: Record<string, string | undefined>) => {
    for (const [k, v] of Object.entries(vars)) {
      if (v === undefined) delete env[k]
      else env[k] = v
    }
  }
  const saved = Object.fromEntries(Object.keys(changes).map((k) => [k, env[k]]))
  apply(changes)
  try {
    return await fn()
  } finally {
    apply(saved)
  }
}

/** The check of a SESSION_AUDIO_CONVEX_SECRET that differs between the two sides, with its fix. */
const secretsDiffer = {
  status: 'fail',
  detail: expect.stringContaining('the two sides hold different secrets'),
  fix: expect.stringContaining('npx convex env set SESSION_AUDIO_CONVEX_SECRET'),
}

describe('session-audio doctor', () => {
  it('all green on a correctly configured app, values never shown', async () => {
    const r = await doctor()
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(r.stdout).toContain('environment: the process, .env.local (values are never shown)')
    for (const line of [
      '✓ NEXT_PUBLIC_CONVEX_URL: set',
      '✓ CLERK_SECRET_KEY: set',
      '✓ SESSION_AUDIO_CONVEX_SECRET: set (64 characters)',
      '✓ BLOB_STORE_ID: set',
      '✓ VERCEL_OIDC_TOKEN: set, valid until',
      '✓ BLOB_WEBHOOK_PUBLIC_KEY: an Ed25519 public key',
      '✓ Clerk accepts the secret key: JWKS with 1 key(s)',
      '✓ Clerk JWT template "convex": exists',
      '✓ Convex reachable',
      '✓ Convex function listeningSessions:getForAudio: deployed',
      '✓ Convex function entitlements:getForCurrentUser: deployed',
      '✓ Convex function listeningSessions:attachAudio: deployed',
      '✓ Convex function listeningSessions:attachedAudio (sweep): deployed',
      '✓ SESSION_AUDIO_SWEEP_SECRET shared with Convex: Convex accepts the value set here',
      '✓ Blob accepts the OIDC token: listed the store',
      '✓ route file: app/api/listening-sessions/[sessionId]/audio/route.ts',
      "✓ next.config serverExternalPackages: next.config.ts lists 'session-audio'",
      // The attach secret and the store, compared by the signed probe without a user.
      '✓ SESSION_AUDIO_CONVEX_SECRET shared with Convex: Convex verified a signature made here: both sides hold the same secret',
      `✓ Convex allows the route's Blob store: it allows ${stack.blob.url}`,
      // Without --as-user no token can be minted: said so, not failed.
      '– Convex accepts the "convex" token and attachAudio verifies the route\'s signature: not checked: listeningSessions:attachAudio checks the caller before the signature',
    ]) {
      expect(r.stdout).toContain(line)
    }
    // The local stack sets SESSION_AUDIO_TRUSTED_HOSTS, whose rules the route's own parser (the
    // addon) checks, with the whole configuration.
    expect(r.stdout).toContain("✓ SESSION_AUDIO_TRUSTED_HOSTS: set; the route's parser accepts it")
    expect(r.stdout).toContain("✓ the route's own configuration check: the addon accepts this configuration")
    expect(r.stdout).toMatch(/\d+ passed, 0 failed, 1 not checked/)
    for (const secret of secretValues()) expect(r.stdout).not.toContain(secret)
  })

  it('--json: { ok, envFiles, checks: [{ id, title, status, detail, fix? }], summary }', async () => {
    const { code, report } = await doctorJson({}, { args: ['--as-user', 'user_alice'] })
    expect(code).toBe(0)
    expect(Object.keys(report).sort()).toEqual(['checks', 'envFiles', 'ok', 'summary'])
    expect(report.ok).toBe(true)
    expect(report.envFiles).toEqual(['.env.local'])
    for (const c of report.checks) {
      expect(Object.keys(c).sort()).toEqual(['detail', 'id', 'status', 'title'])
      expect(['pass', 'fail', 'skip']).toContain(c.status)
      expect(typeof c.detail).toBe('string')
    }
    // Everything checked: with --as-user nothing is left out.
    expect(report.summary).toEqual({ pass: report.checks.length, fail: 0, skip: 0 })
    expect(report.checks.filter((c) => c.status === 'skip').map((c) => c.id)).toEqual([])
    expect(report.checks.find((c) => c.id === 'convex.attachSecret')).toMatchObject({
      status: 'pass',
      detail: expect.stringContaining('both sides hold the same secret'),
    })
    // The test session doctor opened is revoked.
    const opened = [...stack.clerk.sessions.values()].filter((s: any) => s.sub === 'user_alice')
    expect(opened.length).toBeGreaterThan(0)
    expect(opened.every((s: any) => s.status === 'revoked')).toBe(true)
    expect(JSON.stringify(report)).not.toContain(baseEnv.SESSION_AUDIO_CONVEX_SECRET)
  })

  it('a missing variable: failed with its fix, the checks that need it not made', async () => {
    const noKey = await doctorJson({ CLERK_SECRET_KEY: undefined })
    expect(noKey.code).toBe(1)
    expect(noKey.report.ok).toBe(false)
    expect(noKey.check('env.CLERK_SECRET_KEY')).toMatchObject({
      status: 'fail',
      detail: 'missing',
      fix: expect.stringContaining('vercel env add CLERK_SECRET_KEY'),
    })
    expect(noKey.check('clerk.key').status).toBe('skip')
    expect(noKey.check('clerk.template').status).toBe('skip')

    const noSecret = await doctor({ SESSION_AUDIO_CONVEX_SECRET: undefined })
    expect(noSecret.code).toBe(1)
    expect(noSecret.stdout).toContain('✗ SESSION_AUDIO_CONVEX_SECRET: missing: every upload answers 503 config_missing')
    expect(noSecret.stdout).toContain('fix: make one (`openssl rand -hex 32`) and set it on both sides')

    const short = await doctorJson({ SESSION_AUDIO_CONVEX_SECRET: 'short' })
    expect(short.check('env.SESSION_AUDIO_CONVEX_SECRET')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('too short'),
    })

    const noConvex = await doctorJson({ NEXT_PUBLIC_CONVEX_URL: undefined })
    expect(noConvex.code).toBe(1)
    expect(noConvex.check('env.NEXT_PUBLIC_CONVEX_URL')).toMatchObject({ status: 'fail', fix: expect.any(String) })
    expect(noConvex.check('convex.reachable').status).toBe('skip')

    const site = await doctorJson({ NEXT_PUBLIC_CONVEX_URL: 'https://happy-otter-123.convex.site' })
    expect(site.check('env.NEXT_PUBLIC_CONVEX_URL')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('.convex.site'),
      fix: expect.stringContaining('.convex.cloud'),
    })
    const notUrl = await doctorJson({ NEXT_PUBLIC_CONVEX_URL: 'happy-otter-123' })
    expect(notUrl.check('env.NEXT_PUBLIC_CONVEX_URL')).toMatchObject({ status: 'fail', detail: 'not an http(s) URL' })

    const noBlob = await doctorJson({ BLOB_STORE_ID: undefined, VERCEL_OIDC_TOKEN: undefined })
    expect(noBlob.code).toBe(1)
    expect(noBlob.check('env.blob')).toMatchObject({ status: 'fail', fix: expect.stringContaining('vercel env pull') })

    const noWebhookKey = await doctorJson({ BLOB_WEBHOOK_PUBLIC_KEY: undefined })
    expect(noWebhookKey.code).toBe(1)
    expect(noWebhookKey.check('env.BLOB_WEBHOOK_PUBLIC_KEY')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('presigned'),
      fix: expect.stringContaining('vercel env pull .env.local'),
    })
    const badWebhookKey = await doctorJson({ BLOB_WEBHOOK_PUBLIC_KEY: 'not a key' })
    expect(badWebhookKey.check('env.BLOB_WEBHOOK_PUBLIC_KEY').detail).toContain('not an Ed25519 public key')

    const noOidc = await doctorJson({ VERCEL_OIDC_TOKEN: undefined })
    expect(noOidc.check('env.VERCEL_OIDC_TOKEN')).toMatchObject({
      status: 'fail',
      fix: expect.stringContaining('vercel env pull'),
    })
    // On Vercel the token comes with each request: not checkable here, not a failure.
    const onVercel = await doctorJson({ VERCEL_OIDC_TOKEN: undefined, VERCEL: '1' })
    expect(onVercel.check('env.VERCEL_OIDC_TOKEN').status).toBe('skip')
  })

  it("the route's other settings, checked as it parses them", async () => {
    const ok = await doctorJson({ SESSION_AUDIO_MAX_UPLOAD_BYTES: '1048576', SESSION_AUDIO_LOG: 'WARN' })
    expect(ok.check('env.settings')).toMatchObject({
      status: 'pass',
      detail: expect.stringContaining('SESSION_AUDIO_MAX_UPLOAD_BYTES'),
    })
    const bad = await doctorJson({
      SESSION_AUDIO_MAX_UPLOAD_BYTES: '100MB',
      SESSION_AUDIO_BLOB_ACCESS: 'world',
      SESSION_AUDIO_CLIENT_UPLOADS: 'yes',
    })
    expect(bad.code).toBe(1)
    expect(bad.check('env.SESSION_AUDIO_MAX_UPLOAD_BYTES')).toMatchObject({
      status: 'fail',
      detail: 'not a non-negative whole number: every request answers 503 config_invalid',
    })
    expect(bad.check('env.SESSION_AUDIO_BLOB_ACCESS').detail).toContain('not private or public')
    expect(bad.check('env.SESSION_AUDIO_CLIENT_UPLOADS').detail).toContain('not 1 or 0')
  })

  it('the process environment wins over .env.local, and .env is read too', async () => {
    const r = await doctorJson(
      { CLERK_SECRET_KEY: 'sk_test_wrong_in_the_file', SESSION_AUDIO_CONVEX_SECRET: undefined },
      { processEnv: { CLERK_SECRET_KEY: baseEnv.CLERK_SECRET_KEY } },
    )
    expect(r.check('clerk.key').status).toBe('pass')
    expect(r.check('env.SESSION_AUDIO_CONVEX_SECRET').status).toBe('fail')
    fs.writeFileSync(path.join(app, '.env'), `SESSION_AUDIO_CONVEX_SECRET=${'f'.repeat(40)}\n`)
    try {
      const withDotenv = await doctorJson({ SESSION_AUDIO_CONVEX_SECRET: undefined })
      expect(withDotenv.report.envFiles).toEqual(['.env.local', '.env'])
      expect(withDotenv.check('env.SESSION_AUDIO_CONVEX_SECRET')).toMatchObject({
        status: 'pass',
        detail: 'set (40 characters)',
      })
    } finally {
      fs.rmSync(path.join(app, '.env'))
    }
  })

  it('a wrong Clerk key, an unreachable Clerk, a malformed key', async () => {
    const wrong = await doctor({ CLERK_SECRET_KEY: 'sk_test_not_this_instance' })
    expect(wrong.code).toBe(1)
    expect(wrong.stdout).toContain('✗ Clerk accepts the secret key: Clerk refused CLERK_SECRET_KEY (HTTP 401)')
    expect(wrong.stdout).toContain("fix: copy this instance's Secret key again")
    expect(wrong.stdout).toContain('– Clerk JWT template "convex": not checked: Clerk did not accept the key')
    expect(wrong.stdout).not.toContain('sk_test_not_this_instance')

    const publishable = await doctorJson({ CLERK_SECRET_KEY: baseEnv.NEXT_PUBLIC_CLERK_PUBLISHABLE_KEY })
    expect(publishable.check('env.CLERK_SECRET_KEY').detail).toContain('not a Clerk secret key')

    const closed = await closedPort()
    const down = await doctorJson({ CLERK_API_URL: `http://127.0.0.1:${closed}` })
    expect(down.code).toBe(1)
    expect(down.check('clerk.key')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('Clerk unreachable'),
    })
  })

  it("CLERK_JWT_KEY: well-formed, and one of the instance's keys", async () => {
    const ok = await doctorJson({ CLERK_JWT_KEY: stack.clerk.publicKeyPem })
    expect(ok.code).toBe(0)
    expect(ok.check('env.CLERK_JWT_KEY').status).toBe('pass')
    expect(ok.check('clerk.jwtKey').status).toBe('pass')

    const { publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 })
    const other = await doctorJson({ CLERK_JWT_KEY: publicKey.export({ type: 'spki', format: 'pem' }) as string })
    expect(other.code).toBe(1)
    expect(other.check('clerk.jwtKey')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining("not in this instance's JWKS"),
      fix: expect.stringContaining('or remove CLERK_JWT_KEY'),
    })

    const garbage = await doctorJson({ CLERK_JWT_KEY: 'not a key' })
    expect(garbage.check('env.CLERK_JWT_KEY')).toMatchObject({ status: 'fail', detail: 'not an RSA public key (PEM)' })
  })

  it('an unknown JWT template', async () => {
    const r = await doctorJson({ SESSION_AUDIO_CONVEX_TEMPLATE: 'convex-prod' })
    expect(r.code).toBe(1)
    expect(r.check('clerk.template')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('no template named "convex-prod" (found: "convex")'),
      fix: expect.stringContaining('or set SESSION_AUDIO_CONVEX_TEMPLATE to the name of yours'),
    })
  })

  it('a Convex deployment without the template functions', async () => {
    // A deployment with nothing deployed answers every call as the local deployment (and Convex)
    // answers an unknown function.
    const empty = await listen((req, res) => {
      let body = ''
      req.on('data', (c) => (body += c))
      req.on('end', () => {
        const { path: fn } = JSON.parse(body)
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(
          JSON.stringify({
            status: 'error',
            errorMessage: `[Request ID: x] Server Error\nCould not find public function for '${fn}'. Did you forget to run \`npx convex dev\` or \`npx convex deploy\`?`,
            logLines: [],
          }),
        )
      })
    })
    const r = await doctorJson({ NEXT_PUBLIC_CONVEX_URL: empty })
    expect(r.code).toBe(1)
    expect(r.check('convex.reachable').status).toBe('pass')
    for (const fn of [
      'listeningSessions:getForAudio',
      'entitlements:getForCurrentUser',
      'listeningSessions:attachAudio',
      'listeningSessions:attachedAudio',
    ]) {
      expect(r.check(`convex.function.${fn}`)).toMatchObject({
        status: 'fail',
        detail: 'not deployed on this deployment',
        fix: expect.stringContaining('npx convex deploy'),
      })
    }
    // Nor is the probe: the attach secret cannot be compared, and the fix says how to get it.
    expect(r.check('convex.attachSecret')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('listeningSessions:checkAttachSetup is not deployed'),
      fix: expect.stringContaining('npx convex deploy'),
    })
    // One function missing from the real deployment (a name configured that is not there).
    const renamed = await doctorJson({ SESSION_AUDIO_ATTACHED_QUERY: 'listeningSessions:attachedBlobs' })
    expect(renamed.check('convex.function.listeningSessions:attachedBlobs').status).toBe('fail')
    expect(renamed.check('convex.function.listeningSessions:getForAudio').status).toBe('pass')

    const closed = await closedPort()
    const down = await doctorJson({ NEXT_PUBLIC_CONVEX_URL: `http://127.0.0.1:${closed}` })
    expect(down.code).toBe(1)
    expect(down.check('convex.reachable')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('Convex unreachable'),
      fix: expect.stringContaining('check NEXT_PUBLIC_CONVEX_URL'),
    })
    expect(down.check('convex.attachSecret')).toMatchObject({
      status: 'skip',
      detail: 'not checked: Convex is not reachable (above)',
    })
  })

  it('Convex with another sweep secret', async () => {
    const r = await doctor({ SESSION_AUDIO_SWEEP_SECRET: 'another-sweep-secret' })
    expect(r.code).toBe(1)
    expect(r.stdout).toContain('✗ SESSION_AUDIO_SWEEP_SECRET shared with Convex: Convex refuses the value set here')
    expect(r.stdout).toContain('fix: set the same value on both sides: `npx convex env set SESSION_AUDIO_SWEEP_SECRET')
    expect(r.stdout).not.toContain('another-sweep-secret')
    // Not set here: only the function is checked (with a random secret), the sharing is not.
    const unset = await doctorJson({ SESSION_AUDIO_SWEEP_SECRET: undefined })
    expect(unset.code).toBe(0)
    expect(unset.check('convex.function.listeningSessions:attachedAudio').status).toBe('pass')
    expect(unset.check('convex.sweepSecret').status).toBe('skip')
  })

  it('the attach secret compared without a user (a signed probe): another value on Convex, or none', async () => {
    const other = await doctorJson({ SESSION_AUDIO_CONVEX_SECRET: 'b'.repeat(64) })
    expect(other.code).toBe(1)
    expect(other.check('convex.attachSecret')).toMatchObject(secretsDiffer)
    // Convex tells the store only to a caller holding its secret.
    expect(other.check('convex.blobStore')).toMatchObject({
      status: 'skip',
      detail: expect.stringContaining('not checked'),
    })

    const none = await withConvexEnv({ SESSION_AUDIO_CONVEX_SECRET: undefined }, () => doctorJson())
    expectFailed(
      none,
      'convex.attachSecret',
      'the two sides hold different secrets, or Convex has none',
      'npx convex env set SESSION_AUDIO_CONVEX_SECRET',
    )
    // The probe changed nothing: the same deployment still verifies the right value.
    expect((await doctorJson()).check('convex.attachSecret').status).toBe('pass')
  })

  it("the store on the Convex side: another store, none, or (as on Vercel) the store's own host", async () => {
    const storeId = baseEnv.BLOB_STORE_ID.replace(/^store_/, '')
    const storeFix = `npx convex env set SESSION_AUDIO_BLOB_STORE_ID store_${storeId}`
    const other = await withConvexEnv({ SESSION_AUDIO_BLOB_HOSTS: 'http://127.0.0.1:9' }, () => doctorJson())
    expect(other.code).toBe(1)
    expect(other.check('convex.attachSecret').status).toBe('pass')
    expect(other.check('convex.blobStore')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining(`Convex does not allow ${stack.blob.url}`),
      fix: expect.stringContaining(storeFix),
    })

    const none = await withConvexEnv({ SESSION_AUDIO_BLOB_HOSTS: undefined }, () => doctorJson())
    expectFailed(
      none,
      'convex.blobStore',
      'Convex has neither SESSION_AUDIO_BLOB_STORE_ID nor SESSION_AUDIO_BLOB_HOSTS',
      storeFix,
    )

    // Without the loopback emulator the route's uploads land on the store's own host.
    const asOnVercel = (convexStore: string) =>
      withConvexEnv({ SESSION_AUDIO_BLOB_STORE_ID: convexStore }, () =>
        doctorJson({ SESSION_AUDIO_ALLOW_LOOPBACK_UPSTREAM: undefined }),
      )
    expect((await asOnVercel(baseEnv.BLOB_STORE_ID)).check('convex.blobStore')).toMatchObject({
      status: 'pass',
      detail: `it allows https://${storeId.toLowerCase()}.private.blob.vercel-storage.com`,
    })
    const elsewhere = await asOnVercel('store_someoneelse')
    expectFailed(elsewhere, 'convex.blobStore', `Convex does not allow https://${storeId.toLowerCase()}.private`)
  })

  it("the store on the route side: not the OIDC token's store, nor the one Convex allows", async () => {
    const r = await doctorJson({ BLOB_STORE_ID: 'store_otherstore' })
    expectFailed(
      r,
      'blob.oidc',
      'Blob refused the OIDC token (HTTP 403',
      'the token and BLOB_STORE_ID must belong to the same project and store',
    )
    // As on Vercel: Convex allows the real store, the route names another.
    const vercel = await withConvexEnv({ SESSION_AUDIO_BLOB_STORE_ID: baseEnv.BLOB_STORE_ID }, () =>
      doctorJson({ BLOB_STORE_ID: 'store_otherstore', SESSION_AUDIO_ALLOW_LOOPBACK_UPSTREAM: undefined }),
    )
    expectFailed(
      vercel,
      'convex.blobStore',
      'Convex does not allow https://otherstore.private.blob.vercel-storage.com',
      'or fix BLOB_STORE_ID here',
    )
  })

  it('a Clerk instance without the JWT template', async () => {
    const { startClerk } = await import('../stack/clerk.mjs')
    const bare = await startClerk({ secretKey: 'sk_test_without_templates', templates: [] })
    try {
      const r = await doctorJson({ CLERK_API_URL: bare.url, CLERK_SECRET_KEY: 'sk_test_without_templates' })
      expect(r.code).toBe(1)
      expect(r.check('clerk.key').status).toBe('pass')
      expect(r.check('clerk.template')).toMatchObject({
        status: 'fail',
        detail: expect.stringContaining('no template named "convex" (found: none)'),
        fix: expect.stringContaining('JWT templates → New template → Convex'),
      })
    } finally {
      await bare.close()
    }
  })

  it('passes in both Blob auth modes: OIDC, and a read-write token', async () => {
    const oidc = await doctorJson()
    expect(oidc.code).toBe(0)
    for (const id of ['env.BLOB_STORE_ID', 'env.VERCEL_OIDC_TOKEN', 'env.BLOB_WEBHOOK_PUBLIC_KEY', 'blob.oidc'])
      expect(oidc.check(id).status).toBe('pass')
    expect(oidc.check('convex.blobStore').status).toBe('pass')
    expect(oidc.report.checks.some((c) => c.id === 'blob.readWrite')).toBe(false)

    // As startLocalStack({ blobAuth: 'read-write' }) sets it up.
    const rw = await doctorJson({
      BLOB_STORE_ID: undefined,
      VERCEL_OIDC_TOKEN: undefined,
      BLOB_READ_WRITE_TOKEN: stack.blob.token,
    })
    expect(rw.code, JSON.stringify(rw.report.checks.filter((c) => c.status === 'fail'))).toBe(0)
    for (const id of ['env.BLOB_READ_WRITE_TOKEN', 'blob.readWrite', 'convex.attachSecret', 'convex.blobStore'])
      expect(rw.check(id).status).toBe('pass')
    expect(rw.report.checks.some((c) => c.id === 'blob.oidc')).toBe(false)
  })

  it("the signatures doctor makes: the route's known answers, and a probe the template reads as no attach", async () => {
    const file = JSON.parse(fs.readFileSync(path.join(__dirname, 'fixtures', 'attach-signature.json'), 'utf8'))
    const { attachMessage, probeMessage, sign } = await import('../bin/attach-sign.mjs')
    const template = await import('../examples/convex/listeningSessions')
    for (const { args, message, signature } of file.vectors) {
      expect(attachMessage(args)).toBe(message)
      expect(sign(file.secret, attachMessage(args))).toBe(signature)
    }
    const origin = 'https://abc123.private.blob.vercel-storage.com'
    const probe = probeMessage(origin)
    expect(probe).toBe(`session-audio:attachSecretProbe:v1\nblobOrigin=${origin.length}:${origin}`)
    expect(new TextDecoder().decode(template.probeMessage(origin)!)).toBe(probe)
    // Every attach message starts with its own version line; a probe never does.
    expect(probe.startsWith('session-audio:attachAudio:v1')).toBe(false)
    expect(attachMessage(file.vectors[0].args).startsWith('session-audio:attachAudio:v1\n')).toBe(true)
  })

  it('--as-user: Convex with another attach secret, or without its store, or not accepting Clerk', async () => {
    const other = await doctorJson({ SESSION_AUDIO_CONVEX_SECRET: 'a'.repeat(64) }, { args: ['--as-user', 'user_bob'] })
    expect(other.code).toBe(1)
    expect(other.check('convex.attachSecret')).toMatchObject(secretsDiffer)
    // The signed-in path sees the same mismatch through attachAudio itself.
    expect(other.check('convex.asUser')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('the two sides hold different secrets'),
    })

    const noStore = await withConvexEnv({ SESSION_AUDIO_BLOB_HOSTS: undefined }, () =>
      doctorJson({}, { args: ['--as-user', 'user_bob'] }),
    )
    expect(noStore.check('convex.asUser')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('lacks SESSION_AUDIO_BLOB_STORE_ID / SESSION_AUDIO_BLOB_HOSTS'),
    })

    // A template whose tokens Convex does not accept: another Clerk instance (its own keys) that
    // has the template, in front of the same Convex deployment.
    const { startClerk } = await import('../stack/clerk.mjs')
    const stranger = await startClerk({ secretKey: 'sk_test_stranger' })
    try {
      const refused = await doctorJson(
        { CLERK_API_URL: stranger.url, CLERK_SECRET_KEY: 'sk_test_stranger' },
        { args: ['--as-user', 'user_bob'] },
      )
      expect(refused.check('convex.asUser')).toMatchObject({
        status: 'fail',
        detail: expect.stringContaining('Convex refused the "convex" token from Clerk'),
        fix: expect.stringContaining('CLERK_JWT_ISSUER_DOMAIN'),
      })
    } finally {
      await stranger.close()
    }

    // Not checkable without what it needs: said so.
    const noTemplate = await doctorJson({ SESSION_AUDIO_CONVEX_TEMPLATE: 'nope' }, { args: ['--as-user', 'user_bob'] })
    expect(noTemplate.check('convex.asUser')).toMatchObject({
      status: 'skip',
      detail: expect.stringContaining('not checked'),
    })
  })

  it('Blob refusing the credential: a wrong read-write token, an expired OIDC token, another store', async () => {
    const wrongToken = await doctorJson({
      BLOB_STORE_ID: undefined,
      VERCEL_OIDC_TOKEN: undefined,
      BLOB_READ_WRITE_TOKEN: 'vercel_blob_rw_localstore_notthetoken000000000000000',
    })
    expect(wrongToken.code).toBe(1)
    expect(wrongToken.check('blob.readWrite')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('Blob refused the read-write token (HTTP 403'),
      fix: expect.stringContaining("copy the read-write token again from the Blob store's settings"),
    })
    const rightToken = await doctorJson({
      BLOB_STORE_ID: undefined,
      VERCEL_OIDC_TOKEN: undefined,
      BLOB_READ_WRITE_TOKEN: stack.blob.token,
    })
    expect(rightToken.code).toBe(0)
    expect(rightToken.check('blob.readWrite').status).toBe('pass')

    const malformed = await doctorJson({ BLOB_READ_WRITE_TOKEN: 'vercel_blob_wrong' })
    expect(malformed.check('env.BLOB_READ_WRITE_TOKEN').status).toBe('fail')

    const expired = await doctorJson({ VERCEL_OIDC_TOKEN: stack.blob.oidcToken({ expiresInSec: -60 }) })
    expect(expired.code).toBe(1)
    expect(expired.check('env.VERCEL_OIDC_TOKEN')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('expired'),
      fix: expect.stringContaining('vercel env pull .env.local'),
    })

    const otherStore = await doctorJson({ BLOB_STORE_ID: 'store_otherstore' })
    expect(otherStore.code).toBe(1)
    expect(otherStore.check('blob.oidc')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('Blob refused the OIDC token (HTTP 403'),
    })
  })

  it('the project: no route file, no serverExternalPackages entry; outside a Next.js app: not checked', async () => {
    const bare = fakeApp('bare')
    fs.writeFileSync(path.join(bare, 'next.config.ts'), 'export default { reactStrictMode: true }\n')
    const r = await doctorJson({}, { cwd: bare })
    expect(r.code).toBe(1)
    expect(r.check('project.route')).toMatchObject({
      status: 'fail',
      fix: expect.stringContaining('npx session-audio init'),
    })
    expect(r.check('project.nextConfig')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining("next.config.ts does not list 'session-audio'"),
    })
    const custom = await doctorJson({}, { cwd: app, args: ['--route', 'app/elsewhere/route.ts'] })
    expect(custom.check('project.route').status).toBe('fail')

    const notNext = path.join(work, 'not-next')
    fs.mkdirSync(notNext, { recursive: true })
    const outside = await doctorJson({}, { cwd: notNext })
    expect(outside.code).toBe(0)
    expect(outside.check('project')).toMatchObject({
      status: 'skip',
      detail: expect.stringContaining('not checked: no package.json'),
    })
  })

  it("the settings only the route's parser knows, checked by the installed addon", async () => {
    const ok = await doctorJson({
      SESSION_AUDIO_ALLOWED_TYPES: 'audio/webm, audio/mp4',
      SENTRY_DSN: 'https://0123456789abcdef0123456789abcdef@o1.ingest.sentry.io/42',
    })
    expect(ok.code).toBe(0)
    expect(ok.check('route.config').status).toBe('pass')
    for (const id of ['env.SESSION_AUDIO_ALLOWED_TYPES', 'env.SENTRY_DSN', 'env.SESSION_AUDIO_TRUSTED_HOSTS'])
      expect(ok.check(id)).toMatchObject({ status: 'pass', detail: "set; the route's parser accepts it" })

    for (const [name, value] of [
      ['SESSION_AUDIO_ALLOWED_TYPES', 'audio/webm,video/mp4'],
      ['SESSION_AUDIO_TRUSTED_HOSTS', 'https://bad/'],
      ['SENTRY_DSN', 'not a dsn'],
    ]) {
      const bad = await doctorJson({ [name]: value })
      expectFailed(bad, 'route.config', `the route answers every request 503 with: config_invalid`)
      expect(bad.check(`env.${name}`)).toMatchObject({
        status: 'fail',
        detail: expect.stringContaining(name),
        fix: expect.stringContaining('remove it for the default'),
      })
      expect(bad.stdout).not.toContain(value)
    }
  })

  it('CLERK_AUTHORIZED_PARTIES: origins only; VERCEL_BLOB_CALLBACK_URL: answers from here', async () => {
    const parties = await doctorJson({ CLERK_AUTHORIZED_PARTIES: 'https://app.example, http://localhost:3000' })
    expect(parties.check('env.CLERK_AUTHORIZED_PARTIES')).toMatchObject({ status: 'pass', detail: '2 origin(s)' })
    const slash = await doctorJson({ CLERK_AUTHORIZED_PARTIES: 'https://app.example,https://www.app.example/' })
    expectFailed(
      slash,
      'env.CLERK_AUTHORIZED_PARTIES',
      'entry 2 is not an origin',
      'list the origins your app is served from',
    )

    const up = await doctorJson({ VERCEL_BLOB_CALLBACK_URL: stack.clerk.url })
    expect(up.code).toBe(0)
    expect(up.check('env.VERCEL_BLOB_CALLBACK_URL')).toMatchObject({
      status: 'pass',
      detail: expect.stringContaining('answered (HTTP'),
    })
    const closed = await closedPort()
    const down = await doctorJson({ VERCEL_BLOB_CALLBACK_URL: `http://127.0.0.1:${closed}` })
    expectFailed(
      down,
      'env.VERCEL_BLOB_CALLBACK_URL',
      "Blob's upload-completed webhook cannot reach it",
      "this deployment's public URL",
    )
    const malformed = await doctorJson({ VERCEL_BLOB_CALLBACK_URL: 'app.example' })
    expect(malformed.check('env.VERCEL_BLOB_CALLBACK_URL')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('not an http(s) URL'),
    })
  })

  it('every variable the route reads is checked, or said to be left alone (src/options.rs)', async () => {
    const options = fs.readFileSync(path.join(repo, 'src', 'options.rs'), 'utf8')
    const table = options.slice(options.indexOf('settings!(self;'), options.indexOf('pub fn setting('))
    const variables = [...table.matchAll(/=> "([A-Z0-9_]+)"/g)].map((m) => m[1])
    expect(variables.length).toBeGreaterThan(30)
    const { CHECKED, UNCHECKED } = await import('../bin/doctor.mjs')
    const accounted = new Set([...CHECKED, ...Object.keys(UNCHECKED)])
    expect(variables.filter((v) => !accounted.has(v))).toEqual([])
    // Set, a variable left alone says so and why (never its value).
    const r = await doctorJson({ SENTRY_ENVIRONMENT: 'staging' })
    expect(r.check('env.SENTRY_ENVIRONMENT')).toMatchObject({
      status: 'skip',
      detail: expect.stringContaining('set; not checked: a free-form name'),
    })
  })

  it('sends no secret over plain http to a host that is not loopback, and says so', async () => {
    const convex = await relay(stack.convex.url)
    const clerk = await relay(stack.clerk.url)
    const blob = await relay(stack.blob.apiUrl)
    const far = { NEXT_PUBLIC_CONVEX_URL: convex.url, CLERK_API_URL: clerk.url, VERCEL_BLOB_API_URL: blob.url }
    const r = await doctorJson(far)
    expectFailed(
      r,
      'convex.sweepSecret',
      'not checked: the secret was not sent (NEXT_PUBLIC_CONVEX_URL is plain http to a host that is not this machine',
      "use the deployment's https:// URL",
    )
    expectFailed(r, 'env.CLERK_API_URL', 'CLERK_API_URL is plain http to a host that is not this machine', 'https://')
    expect(r.check('clerk.key')).toMatchObject({
      status: 'skip',
      detail: expect.stringContaining('the key was not sent'),
    })
    expectFailed(r, 'env.VERCEL_BLOB_API_URL', 'VERCEL_BLOB_API_URL is plain http to a host that', 'https://')
    expect(r.check('blob.access')).toMatchObject({
      status: 'skip',
      detail: expect.stringContaining('no credential was sent'),
    })
    // The anonymous calls still went through: the relay reaches Convex, and the sweep's function
    // was proved deployed with a random secret instead of the real one.
    expect(r.check('convex.reachable').status).toBe('pass')
    expect(r.check('convex.function.listeningSessions:attachedAudio')).toMatchObject({
      status: 'pass',
      detail: 'deployed (refuses a wrong secret)',
    })
    expect(convex.received().length).toBeGreaterThan(0)
    // The human output says it too.
    const human = await doctor(far)
    expect(human.stdout).toContain(
      '✗ SESSION_AUDIO_SWEEP_SECRET shared with Convex: not checked: the secret was not sent (NEXT_PUBLIC_CONVEX_URL is plain http',
    )
    // --as-user sends a user's Convex token: not over that URL either (Clerk itself on loopback).
    const asUser = await doctorJson({ NEXT_PUBLIC_CONVEX_URL: convex.url }, { args: ['--as-user', 'user_bob'] })
    expect(asUser.check('convex.asUser')).toMatchObject({
      status: 'skip',
      detail: expect.stringContaining('no token was sent: NEXT_PUBLIC_CONVEX_URL is plain http'),
    })
    // Whatever crossed the relays carried none of the secrets, nor a bearer token.
    for (const seen of [convex, clerk, blob].flatMap((x) => x.received())) {
      for (const secret of secretValues()) expect(seen).not.toContain(secret)
      expect(seen).not.toMatch(/authorization:/i)
    }
    // And with the stack's own (loopback) URLs the same secrets are sent and checked.
    const near = await doctorJson()
    expect(near.check('convex.sweepSecret').status).toBe('pass')
    expect(near.check('clerk.key').status).toBe('pass')
  })

  it('maySendSecretTo: https anywhere, plain http only to a loopback host as written', () => {
    const table: [string, boolean][] = [
      ['https://happy-otter-123.convex.cloud', true],
      ['https://10.0.0.5:8443', true],
      ['http://localhost:3210', true],
      ['http://LOCALHOST.:3210', true],
      ['http://127.0.0.1:3210', true],
      ['http://127.8.9.10', true],
      ['http://2130706433/', true], // 127.0.0.1 as one number: the parser writes it dotted
      ['http://[::1]:3210', true],
      ['http://happy-otter-123.convex.cloud', false],
      ['http://0.0.0.0:3210', false],
      ['http://10.0.0.5:3210', false],
      ['http://app.localhost:3210', false], // a resolver may not keep it local
      ['http://127.0.0.1.example.com', false],
      ['http://[::ffff:127.0.0.1]', false],
      ['ftp://127.0.0.1', false],
    ]
    for (const [url, ok] of table) expect([url, maySendSecretTo(new URL(url))]).toEqual([url, ok])
  })

  it('usage errors exit 2', async () => {
    const r = await doctor({}, { args: ['--verbose'] })
    expect([r.code, r.stderr]).toEqual([2, expect.stringContaining('unknown argument "--verbose"')])
    const t = await doctor({}, { args: ['--timeout', 'soon'] })
    expect(t.code).toBe(2)
  })
})

function listen(handler: http.RequestListener): Promise<string> {
  const server = http.createServer(handler)
  servers.push(server)
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as any).port}`)),
  )
}

/**
 * A relay on loopback that forwards every request to `target` and keeps what it received. Its
 * `url` names it as `0.0.0.0`: not a loopback name, so doctor must treat it as a remote host, yet a
 * connection to 0.0.0.0 reaches this machine's 127.0.0.1 (Linux and macOS route it there).
 */
async function relay(target: string) {
  const to = new URL(target)
  const seen: string[] = []
  const base = await listen(async (req, res) => {
    const chunks: Buffer[] = []
    for await (const c of req) chunks.push(c)
    const body = Buffer.concat(chunks)
    seen.push(
      `${req.method} ${req.url}\n${Object.entries(req.headers)
        .map(([k, v]) => `${k}: ${v}`)
        .join('\n')}\n\n${body}`,
    )
    // The end-to-end headers only: fetch sets the connection's own (host, length, keep-alive).
    const hopByHop = ['host', 'connection', 'keep-alive', 'content-length', 'transfer-encoding']
    const headers = Object.entries(req.headers).filter(([k]) => !hopByHop.includes(k)) as [string, string][]
    const answer = await fetch(`${to.origin}${req.url}`, {
      method: req.method,
      headers,
      body: body.length ? body : undefined,
    })
    res.writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? 'application/octet-stream' })
    res.end(Buffer.from(await answer.arrayBuffer()))
  })
  const url = new URL(target)
  url.host = `0.0.0.0:${new URL(base).port}`
  return { url: url.href.replace(/\/$/, ''), received: () => seen }
}

/** A loopback port nothing listens on. */
async function closedPort() {
  const server = http.createServer()
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  const port = (server.address() as any).port
  await new Promise((r) => server.close(r))
  return port
}
