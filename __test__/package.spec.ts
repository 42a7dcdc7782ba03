// What we publish is what works: `npm pack` the main package and the linux-x64-gnu platform
// package (the napi-rs per-platform scheme), install both into a fresh project, type-check the
// README's route file against the shipped index.d.ts, and serve a real request from there.
import { execFile, execFileSync } from 'node:child_process'
import { promisify } from 'node:util'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startStack, type Stack } from './helpers'
import { packPackages } from '../scripts/pack.mjs'

const repo = path.resolve(__dirname, '..')
// Synchronous runs are for steps that need nothing from this process; anything that talks to the
// loopback servers hosted here must not block the event loop (`runAsync`).
function run(cmd: string, args: string[], cwd: string) {
  try {
    return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; message: string }
    throw new Error(`${err.message}\n${err.stdout ?? ''}\n${err.stderr ?? ''}`)
  }
}
const runAsync = async (cmd: string, args: string[], cwd: string, env: Record<string, string>) =>
  (await promisify(execFile)(cmd, args, { cwd, env: { ...process.env, ...env }, encoding: 'utf8' })).stdout

let s: Stack
let work: string
let consumer: string
let packed: { main: string; platform: string; mainFiles: string[]; platformFiles: string[] }

beforeAll(async () => {
  s = await startStack()
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'session-audio-pack-'))
  // The napi way (scripts/pack.mjs, also what the example app installs): the main package and the
  // platform package with the portable binary `scripts/build-all.sh` built, when there is one.
  packed = packPackages(work, { prefer: 'portable' })
  consumer = path.join(work, 'consumer')
  fs.mkdirSync(consumer)
  fs.writeFileSync(
    path.join(consumer, 'package.json'),
    JSON.stringify({ name: 'consumer', private: true, version: '1.0.0' }),
  )
  run('npm', ['install', '--offline', '--no-audit', '--no-fund', packed.main, packed.platform], consumer)
}, 180_000)

afterAll(async () => {
  await s.close()
  fs.rmSync(work, { recursive: true, force: true })
})

describe('the published packages', () => {
  it('the main tarball carries the JS face and no binary; the platform package carries the binary', () => {
    const p = packed
    // The browser helper's modules, whatever they are: every .mjs under client/ in the checkout.
    const clientModules = fs
      .readdirSync(path.join(repo, 'client'), { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.mjs'))
      .map((f) => `client/${f.split(path.sep).join('/')}`)
    expect(clientModules).toContain('client/blob/multipart.mjs')
    // The CLI's modules, and the Convex template `init` copies (examples/convex, one source of truth).
    const binModules = fs
      .readdirSync(path.join(repo, 'bin'))
      .filter((f) => f.endsWith('.mjs'))
      .map((f) => `bin/${f}`)
    expect(binModules).toContain('bin/session-audio.mjs')
    expect(p.mainFiles.sort()).toEqual(
      [
        ...clientModules,
        ...binModules,
        // npm adds a folder's README to the package with the files listed from it.
        'examples/convex/README.md',
        'examples/convex/auth.config.ts',
        'examples/convex/entitlements.ts',
        'examples/convex/listeningSessions.ts',
        'examples/convex/schema.ts',
        'README.md',
        'binding.d.ts',
        'binding.js',
        'client.d.ts',
        'client.mjs',
        'index.d.ts',
        'index.js',
        'package.json',
      ].sort(),
    )
    expect(p.platformFiles.sort()).toEqual(['README.md', 'package.json', 'session-audio.linux-x64-gnu.node'])
  })

  it("the README's route file type-checks against the shipped index.d.ts", () => {
    const route = path.join(consumer, 'route.ts')
    fs.writeFileSync(
      route,
      [
        "import { handleAudioGet, handleAudioPost, createAudioHandlers, createPagesAudioHandler } from 'session-audio'",
        "export const runtime = 'nodejs'",
        'export const GET = handleAudioGet',
        'export const POST = handleAudioPost',
        "export const other = createAudioHandlers({ cacheMaxAge: 60, trustedHosts: ['*.public.blob.vercel-storage.com'] })",
        'export const playback: (req: any, res: any) => Promise<void> = createPagesAudioHandler({ cacheMaxAge: 60 })',
      ].join('\n'),
    )
    const tsc = path.join(repo, 'node_modules', '.bin', 'tsc')
    run(
      tsc,
      ['--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--lib', 'es2022,dom', route],
      consumer,
    )
    // The browser helper, as a client component imports it (its types only: it needs @vercel/blob).
    const client = path.join(consumer, 'recorder.mts')
    fs.writeFileSync(
      client,
      [
        "import { uploadSessionAudio, SessionAudioUploadError, finaliseWebm, createWebmFinaliser } from 'session-audio/client'",
        'export const seekable = (b: Blob): Promise<Blob> => finaliseWebm(b)',
        'export function parts(chunks: Uint8Array[]): [Uint8Array, Uint8Array, number] {',
        '  const f = createWebmFinaliser()',
        '  for (const c of chunks) f.push(c)',
        '  const { header, tail } = f.finish()',
        '  return [header, tail, f.headerLength ?? 0]',
        '}',
        'export async function send(id: string, blob: Blob): Promise<string> {',
        '  try {',
        '    const r = await uploadSessionAudio(id, blob, { durationMs: 1000, onProgress: (p) => void p.percentage })',
        '    return r.audioUrl',
        '  } catch (e) {',
        '    return e instanceof SessionAudioUploadError ? e.code : String(e)',
        '  }',
        '}',
      ].join('\n'),
    )
    run(
      tsc,
      ['--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--lib', 'es2022,dom', client],
      consumer,
    )
    fs.writeFileSync(
      route,
      "import { createAudioHandlers } from 'session-audio'\ncreateAudioHandlers({ convexURL: 'x' })\n",
    )
    expect(() =>
      run(
        tsc,
        [
          '--noEmit',
          '--strict',
          '--module',
          'nodenext',
          '--moduleResolution',
          'nodenext',
          '--lib',
          'es2022,dom',
          route,
        ],
        consumer,
      ),
    ).toThrow(/convexURL/)
  })

  it('the installed CLI: `session-audio init` copies the shipped Convex template into an app', () => {
    const app = path.join(work, 'next-app')
    fs.mkdirSync(path.join(app, 'app'), { recursive: true })
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ dependencies: { next: '16.0.0' } }))
    fs.writeFileSync(path.join(app, 'next.config.mjs'), 'export default {}\n')
    const bin = path.join(consumer, 'node_modules', '.bin', 'session-audio')
    const out = run(bin, ['init'], app)
    expect(out).toContain('create     convex/listeningSessions.ts (Convex template)')
    for (const f of ['listeningSessions.ts', 'entitlements.ts', 'auth.config.ts', 'schema.ts']) {
      expect(fs.readFileSync(path.join(app, 'convex', f), 'utf8')).toBe(
        fs.readFileSync(path.join(repo, 'examples', 'convex', f), 'utf8'),
      )
    }
    expect(fs.readFileSync(path.join(app, 'next.config.mjs'), 'utf8')).toBe(
      "export default {\n  serverExternalPackages: ['session-audio'],\n}\n",
    )
  })

  it('the installed package serves a real request, loading the platform package', async () => {
    const sessionId = await s.session('user_alice')
    const token = await s.clerk.sessionToken()
    const script = `
      const { handleAudioGet } = require('session-audio')
      const loaded = Object.keys(require.cache).find((k) => k.endsWith('.node'))
      ;(async () => {
        const req = new Request('http://app.local/x', { headers: { authorization: 'Bearer ' + process.env.TOKEN, range: 'bytes=0-9' } })
        const res = await handleAudioGet(req, { params: Promise.resolve({ sessionId: process.env.SESSION_ID }) })
        const body = Buffer.from(await res.arrayBuffer())
        console.log(JSON.stringify({ status: res.status, range: res.headers.get('content-range'), body: body.toString('hex'), loaded }))
      })()
    `
    const out = await runAsync('node', ['-e', script], consumer, {
      TOKEN: token,
      SESSION_ID: sessionId,
      NEXT_PUBLIC_CONVEX_URL: s.convex.url,
      CLERK_SECRET_KEY: s.clerk.secretKey,
      CLERK_API_URL: s.clerk.url,
      SESSION_AUDIO_TRUSTED_HOSTS: s.audio.host,
      SESSION_AUDIO_ALLOW_LOOPBACK_UPSTREAM: '1',
    })
    const result = JSON.parse(out.trim().split('\n').at(-1)!)
    expect(result.status).toBe(206)
    expect(result.range).toBe(`bytes 0-9/${s.wav.length}`)
    expect(result.body).toBe(s.wav.subarray(0, 10).toString('hex'))
    expect(result.loaded).toContain(
      path.join('node_modules', 'session-audio-linux-x64-gnu', 'session-audio.linux-x64-gnu.node'),
    )
  })

  it('session-audio/client loads in the installed package, with every module it imports', () => {
    const script = "import('session-audio/client').then((m) => console.log(Object.keys(m).sort().join(',')))"
    const out = run('node', ['--input-type=module', '-e', script], consumer)
    expect(out.trim().split(',')).toEqual(expect.arrayContaining(['SessionAudioUploadError', 'uploadSessionAudio']))
  })

  it('on a platform without a binary, the import fails with an error naming the missing package', () => {
    const script = `
      Object.defineProperty(process, 'platform', { value: 'freebsd' })
      try { require('session-audio'); console.log('loaded?!') } catch (e) { console.log(e.message) }
    `
    const out = run('node', ['-e', script], consumer)
    expect(out).toMatch(/^session-audio: no native binary for this platform \(freebsd-x64\)/)
    expect(out).toContain('session-audio-freebsd-x64')
    expect(out).toContain('x86_64-unknown-linux-gnu')
  })
})
