// Whose `x-vercel-oidc-token` is it? Vercel sets that header on every request it hands a
// deployment, replacing any a client sent; anywhere else it is whatever the client sent. So it is
// read only on Vercel (VERCEL=1) or where the trustOidcHeader option says the platform sets it;
// elsewhere the route uses env VERCEL_OIDC_TOKEN. And the caller is authenticated before any Blob
// credential is resolved: an anonymous request is a 401, never a 503 or a Sentry event.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startSentry } from '../stack/sentry.mjs'
import { sineWav } from '../stack/wav.mjs'
import { createAudioHandlers, type AudioOptions } from '../index.js'
import { errorOf, startStack, type Handlers, type Stack, until } from './helpers'

let s: Stack
let sentry: Awaited<ReturnType<typeof startSentry>>
let alice: string
const wav = sineWav(2)
const meta = { 'x-duration-ms': '2000', 'x-content-type': 'audio/wav' }

/** Run `fn` with these environment variables (undefined: unset), then put them back. */
function withEnv<T>(vars: Record<string, string | undefined>, fn: () => T): T {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]))
  const apply = (values: Record<string, string | undefined>) => {
    for (const [k, v] of Object.entries(values)) {
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
    }
  }
  apply(vars)
  try {
    const out = fn()
    if (out instanceof Promise) return out.finally(() => apply(saved)) as T
    apply(saved)
    return out
  } catch (err) {
    apply(saved)
    throw err
  }
}

/** Handlers of a deployment with OIDC (BLOB_STORE_ID), built with `VERCEL` as given. */
function deployment(vercel: string | undefined, extra: AudioOptions = {}): Handlers {
  return withEnv({ VERCEL: vercel }, () =>
    createAudioHandlers(s.oidcOptions({ trustOidcHeader: undefined, sentryDsn: sentry.dsn, ...extra })),
  )
}

beforeAll(async () => {
  s = await startStack()
  sentry = await startSentry()
  alice = await s.clerk.sessionToken({ sub: 'user_alice' })
  for (const k of ['VERCEL', 'VERCEL_OIDC_TOKEN', 'BLOB_STORE_ID', 'BLOB_READ_WRITE_TOKEN']) delete process.env[k]
})
afterAll(async () => {
  await sentry.close()
  await s.close()
})

const recording = () => s.session('user_alice', null, { status: 'recording' })
/** A token shaped like Vercel's and unexpired, whose signature Blob refuses. */
const forged = () => {
  const [h, p] = s.blob.oidcToken().split('.')
  return `${h}.${p}.${Buffer.from('forged').toString('base64url')}`
}
const bad = () => ({
  forged: forged(),
  garbage: 'garbage',
  blank: '',
  expired: s.blob.oidcToken({ expiresInSec: -60 }),
})
/** Let the Sentry transport send what it queued, then count. */
const sentryEvents = async () => {
  await new Promise((r) => setTimeout(r, 300))
  return sentry.events().length
}

describe('off Vercel the header is a client header, and ignored', () => {
  it("a signed-in user's upload with a forged, garbage, blank or expired header is stored with env VERCEL_OIDC_TOKEN, and read back with it", async () => {
    const handlers = deployment(undefined)
    const env = s.blob.oidcToken({ claims: { jti: 'env' } })
    for (const [name, header] of Object.entries(bad())) {
      await withEnv({ VERCEL_OIDC_TOKEN: env }, async () => {
        const id = await recording()
        const res = await s.post(id, wav, {
          token: alice,
          headers: { ...meta, 'x-vercel-oidc-token': header },
          handlers,
        })
        expect([name, res.status, await res.clone().text()]).toEqual([name, 201, expect.any(String)])
        expect(s.blob.puts.at(-1)!.headers.authorization).toBe(`Bearer ${env}`)
        const got = await s.get(id, { token: alice, headers: { 'x-vercel-oidc-token': header }, handlers })
        expect([name, got.status]).toEqual([name, 200])
        expect(Buffer.from(await got.arrayBuffer()).equals(wav)).toBe(true)
      })
    }
  })

  it('trustOidcHeader: false keeps it ignored even with VERCEL=1', async () => {
    const handlers = deployment('1', { trustOidcHeader: false })
    const env = s.blob.oidcToken({ claims: { jti: 'env2' } })
    await withEnv({ VERCEL_OIDC_TOKEN: env }, async () => {
      const res = await s.post(await recording(), wav, {
        token: alice,
        headers: { ...meta, 'x-vercel-oidc-token': forged() },
        handlers,
      })
      expect(res.status).toBe(201)
      expect(s.blob.puts.at(-1)!.headers.authorization).toBe(`Bearer ${env}`)
    })
  })
})

describe('where the platform sets the header (VERCEL=1, or trustOidcHeader)', () => {
  it('its token is used; a blank, garbage or expired one is the request’s 400 invalid_oidc_token: no 503, no Sentry event, nothing stored', async () => {
    for (const handlers of [deployment('1'), deployment(undefined, { trustOidcHeader: true })]) {
      const platform = s.blob.oidcToken({ claims: { jti: 'platform' } })
      const ok = await s.post(await recording(), wav, {
        token: alice,
        headers: { ...meta, 'x-vercel-oidc-token': platform },
        handlers,
      })
      expect(ok.status).toBe(201)
      expect(s.blob.puts.at(-1)!.headers.authorization).toBe(`Bearer ${platform}`)
      const events = await sentryEvents()
      const puts = s.blob.puts.length
      const { forged: _, ...unusable } = bad()
      for (const [name, header] of Object.entries(unusable)) {
        // Even with a good token in the environment: the platform's header decides.
        await withEnv({ VERCEL_OIDC_TOKEN: s.blob.oidcToken() }, async () => {
          const e = await errorOf(
            await s.post(await recording(), wav, {
              token: alice,
              headers: { ...meta, 'x-vercel-oidc-token': header },
              handlers,
            }),
          )
          expect([name, e.status, e.code]).toEqual([name, 400, 'invalid_oidc_token'])
          expect(e.message).toContain('x-vercel-oidc-token')
          if (header) expect(e.message).not.toContain(header)
        })
      }
      expect(s.blob.puts.length).toBe(puts)
      expect(await sentryEvents()).toBe(events)
    }
  })
})

describe('the caller first', () => {
  it('anonymous POSTs of every kind are 401 before any credential work, whatever the header and the deployment: no Blob call, no Sentry event', async () => {
    const deployments: [string, Handlers][] = [
      ['OIDC, off Vercel, no env token', deployment(undefined)],
      ['OIDC, on Vercel', deployment('1')],
      [
        'no Blob store at all',
        createAudioHandlers(s.options({ blobReadWriteToken: undefined, sentryDsn: sentry.dsn })),
      ],
      ['no attach secret', createAudioHandlers(s.options({ convexSecret: undefined, sentryDsn: sentry.dsn }))],
    ]
    const id = await recording()
    const events = (
      pathname = `listening-sessions/${id}/a.wav`,
      clientPayload = JSON.stringify({ durationMs: 2000, contentType: 'audio/wav' }),
    ) => [
      { type: 'blob.generate-client-token', payload: { pathname, clientPayload, multipart: false } },
      { type: 'blob.generate-presigned-url', payload: { pathname, clientPayload, multipart: false } },
      { type: 'session-audio.complete-upload', payload: { url: `${s.blob.url}/${pathname}` } },
    ]
    const before = await sentryEvents()
    const auth = s.blob.auth.length
    const puts = s.blob.puts.length
    for (const [name, handlers] of deployments) {
      for (const header of [undefined, ...Object.values(bad())]) {
        const oidc: Record<string, string> = header === undefined ? {} : { 'x-vercel-oidc-token': header }
        const audio = await errorOf(await s.post(id, wav, { headers: { ...meta, ...oidc }, handlers }))
        expect([name, header, audio.status, audio.code]).toEqual([name, header, 401, 'token_missing'])
        for (const event of events()) {
          const e = await errorOf(
            await s.post(id, JSON.stringify(event), {
              headers: { 'content-type': 'application/json', ...oidc },
              handlers,
            }),
          )
          expect([name, event.type, e.status, e.code]).toEqual([name, event.type, 401, 'token_missing'])
        }
      }
    }
    expect(s.blob.auth.length).toBe(auth)
    expect(s.blob.puts.length).toBe(puts)
    expect(await sentryEvents()).toBe(before)
    expect(await until(async () => (await s.convex.getSession(id)).status === 'recording')).toBe(true)
  })
})
