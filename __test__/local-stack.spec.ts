// The local stack (`npm run stack`, `npm run demo`): Clerk's development rate limit, the dev
// sign-in page as the official Clerk SDK sees it, state that survives a restart, and the CLI.
import { afterAll, describe, expect, it } from 'vitest'
import { spawn } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createClerkClient } from '@clerk/backend'
import { ConvexHttpClient } from 'convex/browser'
import { makeFunctionReference } from 'convex/server'
import { head, put } from '@vercel/blob'
import { startLocalStack, CLERK_DEV_RATE_LIMIT } from '../stack/local.mjs'
import { createAudioHandlers } from '../index.js'
import { fixture } from './helpers'

const dirs: string[] = []
const tmp = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'session-audio-local-'))
  dirs.push(d)
  return d
}
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })))

const create = makeFunctionReference<'mutation', Record<string, never>, string>('listeningSessions:create')
const listMine = makeFunctionReference<'query', Record<string, never>, { _id: string; status: string }[]>(
  'listeningSessions:listMine',
)

async function signInCookies(stack: Awaited<ReturnType<typeof startLocalStack>>, user = 'user_alice') {
  const res = await fetch(`${stack.clerk.url}/sign-in`, {
    method: 'POST',
    body: new URLSearchParams({ user, redirect_url: 'http://localhost:3000/' }),
    redirect: 'manual',
  })
  expect(res.status).toBe(303)
  expect(res.headers.get('location')).toBe('http://localhost:3000/')
  return Object.fromEntries(res.headers.getSetCookie().map((c) => c.split(';')[0].split('=')))
}

describe('the local stack', () => {
  it("enforces Clerk's development limit (100 Backend API calls per 10 s) with 429 + Retry-After", async () => {
    const stack = await startLocalStack({ dir: tmp() })
    try {
      const auth = { authorization: `Bearer ${stack.clerk.secretKey}` }
      const statuses = []
      for (let i = 0; i < CLERK_DEV_RATE_LIMIT + 5; i++) {
        statuses.push((await fetch(`${stack.clerk.url}/v1/jwks`, { headers: auth })).status)
      }
      expect(statuses.slice(0, CLERK_DEV_RATE_LIMIT).every((s) => s === 200)).toBe(true)
      const limited = await fetch(`${stack.clerk.url}/v1/jwks`, { headers: auth })
      expect(limited.status).toBe(429)
      const retryAfter = Number(limited.headers.get('retry-after'))
      expect(retryAfter).toBeGreaterThanOrEqual(1)
      expect(retryAfter).toBeLessThanOrEqual(10)
      expect((await limited.json()).errors[0].code).toBe('too_many_requests')
    } finally {
      await stack.close()
    }
  })

  it('under that limit, 300 seeks through session-audio all succeed: the caches keep Clerk calls to a handful', async () => {
    const stack = await startLocalStack({ dir: tmp() })
    try {
      const { GET, POST } = createAudioHandlers({
        convexUrl: stack.convex.url,
        clerkSecretKey: stack.clerk.secretKey,
        clerkApiUrl: stack.clerk.url,
        blobReadWriteToken: stack.blob.token,
        blobApiUrl: stack.blob.apiUrl,
        trustedHosts: [stack.blob.host],
        allowLoopbackUpstream: true,
        convexSecret: stack.env.SESSION_AUDIO_CONVEX_SECRET,
      })
      const cookies = await signInCookies(stack)
      const cookie = `__session=${cookies.__session}`
      const token = await (
        await fetch(`${stack.clerk.url}/v1/sessions/${cookies.__sa_dev_sid}/tokens/convex`, {
          method: 'POST',
          headers: { authorization: `Bearer ${stack.clerk.secretKey}` },
        })
      ).json()
      const convex = new ConvexHttpClient(stack.convex.url)
      convex.setAuth(token.jwt)
      const id = await convex.mutation(create, {})
      const url = `http://localhost:3000/api/listening-sessions/${id}/audio`
      const audio = fixture('tone-5s.ogg')
      const up = await POST(
        new Request(url, {
          method: 'POST',
          headers: { cookie, 'x-duration-ms': '5000', 'x-content-type': 'audio/ogg' },
          body: audio,
        }),
        { params: Promise.resolve({ sessionId: id }) },
      )
      expect(up.status).toBe(201)
      const before = { ...stack.clerk.calls }
      const statuses = new Map<number, number>()
      for (let i = 0; i < 300; i++) {
        const at = (i * 997) % (audio.length - 100)
        const res = await GET(new Request(url, { headers: { cookie, range: `bytes=${at}-${at + 99}` } }), {
          params: Promise.resolve({ sessionId: id }),
        })
        await res.arrayBuffer()
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1)
      }
      expect(Object.fromEntries(statuses)).toEqual({ 206: 300 })
      expect(stack.clerk.calls.limited).toBe(0)
      expect(stack.clerk.calls.jwks + stack.clerk.calls.tokens - before.jwks - before.tokens).toBeLessThanOrEqual(3)
    } finally {
      await stack.close()
    }
  })

  it('the dev sign-in cookie is a session that @clerk/backend authenticateRequest accepts', async () => {
    const stack = await startLocalStack({ dir: tmp() })
    try {
      const page = await fetch(
        `${stack.clerk.url}/sign-in?redirect_url=${encodeURIComponent('http://localhost:3000/')}`,
      )
      expect(await page.text()).toContain('Sign in as Alice')
      const cookies = await signInCookies(stack, 'user_bob')
      expect(cookies.__clerk_db_jwt).toBeTruthy()
      const clerk = createClerkClient({
        secretKey: stack.env.CLERK_SECRET_KEY,
        publishableKey: stack.env.NEXT_PUBLIC_CLERK_PUBLISHABLE_KEY,
        apiUrl: stack.env.CLERK_API_URL,
        telemetry: { disabled: true },
      })
      const cookie = Object.entries(cookies)
        .map(([k, v]) => `${k}=${v}`)
        .join('; ')
      const state = await clerk.authenticateRequest(
        new Request('http://localhost:3000/api/x', { headers: { cookie, 'sec-fetch-dest': 'empty' } }),
      )
      expect(state.status).toBe('signed-in')
      expect(state.toAuth()).toMatchObject({ userId: 'user_bob' })
      // The template token Clerk's SDK mints for Convex comes from the same stack.
      const jwt = await clerk.sessions.getToken(cookies.__sa_dev_sid, 'convex')
      expect(JSON.parse(Buffer.from(jwt.jwt.split('.')[1], 'base64url').toString()).aud).toBe('convex')
      // Signed out: the cookies are cleared and the session ends.
      const out = await fetch(`${stack.clerk.url}/sign-out?redirect_url=http://localhost:3000/`, {
        headers: { cookie },
        redirect: 'manual',
      })
      expect(out.headers.getSetCookie().some((c) => c.startsWith('__session=;'))).toBe(true)
      expect(stack.clerk.sessions.get(cookies.__sa_dev_sid).status).toBe('ended')
    } finally {
      await stack.close()
    }
  })

  it('keeps Convex documents and Blob files in its folder across restarts', async () => {
    const dir = tmp()
    let stack = await startLocalStack({ dir })
    const ports = { clerk: 0, convex: 0, blob: stack.blob.port }
    const sessionId = await stack.convex.insertSession({ userId: 'user_alice', status: 'recording' })
    process.env.VERCEL_BLOB_API_URL = stack.blob.apiUrl
    process.env.VERCEL_BLOB_RETRIES = '0'
    const stored = await put('sessions/kept.wav', Buffer.from('RIFF kept audio'), {
      access: 'public',
      token: stack.blob.token,
      contentType: 'audio/wav',
    })
    await stack.close()
    expect(fs.existsSync(path.join(dir, 'convex.json'))).toBe(true)

    stack = await startLocalStack({ dir, ports })
    try {
      expect(stack.convex.restored).toBe(1)
      expect(await stack.convex.getSession(sessionId)).toMatchObject({ userId: 'user_alice', status: 'recording' })
      // New ids continue after the restored ones instead of colliding with them.
      const next = await stack.convex.insertSession({ userId: 'user_bob' })
      expect(next).not.toBe(sessionId)
      expect(await stack.convex.getSession(sessionId)).not.toBeNull()
      process.env.VERCEL_BLOB_API_URL = stack.blob.apiUrl
      expect(await head(stored.url, { token: stack.blob.token })).toMatchObject({ size: 15 })
      expect(await (await fetch(stored.url)).text()).toBe('RIFF kept audio')
    } finally {
      delete process.env.VERCEL_BLOB_API_URL
      delete process.env.VERCEL_BLOB_RETRIES
      await stack.close()
    }
  })

  it('npm run stack: prints every URL and the environment, serves, and stops on SIGTERM', async () => {
    const child = spawn(process.execPath, ['stack/cli.mjs', '--dir', tmp()], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d) => {
        out += d
        if (out.includes('SESSION_AUDIO_DEV_SIGN_OUT_URL')) resolve()
      })
      child.on('exit', (code) => reject(new Error(`exited ${code}: ${out}`)))
    })
    const env = Object.fromEntries(
      out
        .split('\n')
        .filter((l) => /^[A-Z_]+=/.test(l))
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    )
    for (const k of [
      'CLERK_API_URL',
      'NEXT_PUBLIC_CONVEX_URL',
      'VERCEL_BLOB_API_URL',
      'NEXT_PUBLIC_CLERK_PUBLISHABLE_KEY',
    ])
      expect(env[k], k).toBeTruthy()
    // The store's Ed25519 webhook key, on one dotenv line: quoted, line breaks as `\n`.
    expect(env.BLOB_WEBHOOK_PUBLIC_KEY).toMatch(/^"-----BEGIN PUBLIC KEY-----\\n[\w+/=]+\\n-----END PUBLIC KEY-----"$/)
    const pem = env.BLOB_WEBHOOK_PUBLIC_KEY.slice(1, -1).replaceAll('\\n', '\n')
    expect(crypto.createPublicKey(pem).asymmetricKeyType).toBe('ed25519')
    const jwks = await fetch(`${env.CLERK_API_URL}/v1/jwks`, {
      headers: { authorization: `Bearer ${env.CLERK_SECRET_KEY}` },
    })
    expect(jwks.status).toBe(200)
    // OIDC by default, as Vercel sets a project up today: no read-write token is handed out.
    expect(env.BLOB_READ_WRITE_TOKEN).toBeUndefined()
    expect(env.BLOB_STORE_ID).toMatch(/^store_/)
    const list = await fetch(env.VERCEL_BLOB_API_URL, {
      headers: {
        authorization: `Bearer ${env.VERCEL_OIDC_TOKEN}`,
        'x-vercel-blob-store-id': env.BLOB_STORE_ID.replace(/^store_/, ''),
      },
    })
    expect(list.status).toBe(200)
    child.kill('SIGTERM')
    expect(await new Promise((r) => child.once('exit', r))).toBe(0)
  })
})
