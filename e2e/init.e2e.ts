// examples/nextjs is what `npx session-audio init` makes of a plain Next.js 16 App Router app
// (issue #27): it is committed without the route file and without next.config's
// serverExternalPackages entry, and scripts/prepare-example.sh runs the installed package's init on
// it before `next build`. Here, after that build: a second init changes nothing, the committed
// config's other settings are byte-identical, and the route init wrote answers through
// `next start` against the local stack (the other browser specs use it as well).
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startLocalStack } from '../stack/local.mjs'
import { startExampleApp } from '../stack/app.mjs'
import { sineWav } from '../stack/wav.mjs'

const appDir = path.resolve(__dirname, '..', 'examples', 'nextjs')
const ROUTE = path.join('app', 'api', 'listening-sessions', '[sessionId]', 'audio', 'route.ts')
const read = (name: string) => fs.readFileSync(path.join(appDir, name), 'utf8')

/** Every file init could touch: the app without its installs and builds, and the template it copies. */
function snapshot() {
  const out: Record<string, string> = {}
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      if (['node_modules', '.next', '.tarballs'].includes(e.name)) continue
      const p = path.join(dir, e.name)
      if (e.isDirectory()) walk(p)
      else out[path.relative(appDir, p)] = fs.readFileSync(p, 'utf8')
    }
  }
  walk(appDir)
  walk(path.resolve(appDir, '..', 'convex'))
  return out
}

describe('examples/nextjs is init’s output', () => {
  it('a second `npx session-audio init` changes nothing', async () => {
    const before = snapshot()
    // As a user runs it: the installed package's command, stdin not a terminal.
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [path.join(appDir, 'node_modules', 'session-audio', 'bin', 'session-audio.mjs'), 'init'],
      { cwd: appDir, env: { PATH: process.env.PATH! } },
    )
    expect(stdout).toContain('Nothing changed: every file init writes is already in place.')
    expect(stdout).toContain(`unchanged  ${ROUTE} (route file)`)
    expect(stdout).toContain("unchanged  next.config.ts (already lists 'session-audio' in serverExternalPackages)")
    expect(stdout).toContain('unchanged  ../convex/listeningSessions.ts (Convex template)')
    expect(stdout).not.toMatch(/^ {2}(create|edit|replace|kept) /m)
    expect(snapshot()).toEqual(before)
  })

  it('the route file is the four lines, and next.config keeps its other settings byte for byte', () => {
    expect(read(ROUTE)).toBe(
      "import { handleAudioGet, handleAudioPost } from 'session-audio'\n" +
        "export const runtime = 'nodejs'\n" +
        'export const GET = handleAudioGet\n' +
        'export const POST = handleAudioPost\n',
    )
    const before = read('next.config.before-init.ts')
    const opening = 'const config: NextConfig = {'
    expect(before).toContain(opening)
    expect(before).toContain('outputFileTracingRoot: __dirname,')
    expect(before).not.toContain("serverExternalPackages: ['session-audio'],\n")
    // Exactly one line inserted, everything else as committed.
    expect(read('next.config.ts')).toBe(
      before.replace(opening, `${opening}\n  serverExternalPackages: ['session-audio'],`),
    )
  })

  describe('the route init wrote, through next start against the local stack', () => {
    let stack: Awaited<ReturnType<typeof startLocalStack>>
    let app: Awaited<ReturnType<typeof startExampleApp>>
    beforeAll(async () => {
      stack = await startLocalStack({ dir: fs.mkdtempSync(path.join(os.tmpdir(), 'session-audio-e2e-init-')) })
      app = await startExampleApp({ env: stack.env, port: 0, inherit: !!process.env.E2E_ECHO })
    })
    afterAll(async () => {
      await app?.close()
      await stack?.close()
    })

    it('doctor, run in the app with its environment, passes in both Blob auth modes', async () => {
      // The sweep's secret too, on both sides, so that nothing is left unchecked.
      const sweep = { SESSION_AUDIO_SWEEP_SECRET: 'sweep-secret-for-the-init-e2e' }
      Object.assign(stack.convex.env, sweep)
      const { BLOB_STORE_ID, VERCEL_OIDC_TOKEN, ...rest } = { ...stack.env, ...sweep }
      for (const env of [
        { ...stack.env, ...sweep },
        { ...rest, BLOB_READ_WRITE_TOKEN: stack.blob.token },
      ]) {
        const r = await promisify(execFile)(
          process.execPath,
          [
            path.join(appDir, 'node_modules', 'session-audio', 'bin', 'session-audio.mjs'),
            'doctor',
            '--json',
            '--as-user',
            'user_alice',
          ],
          { cwd: appDir, env: { PATH: process.env.PATH!, ...env } },
        ).catch((e) => e)
        const report = JSON.parse(r.stdout)
        expect(report.checks.filter((c: { status: string }) => c.status !== 'pass')).toEqual([])
        expect(report.ok).toBe(true)
        expect(report.checks.map((c: { id: string }) => c.id)).toEqual(
          expect.arrayContaining([
            'project.route',
            'project.nextConfig',
            'route.config',
            'convex.attachSecret',
            'convex.asUser',
          ]),
        )
      }
    })

    it('refuses an anonymous caller, stores an upload, and streams it back', async () => {
      const id = await stack.convex.insertSession({ userId: 'user_alice', status: 'recording' })
      const url = `${app.url}/api/listening-sessions/${id}/audio`
      const anonymous = await fetch(url)
      expect(anonymous.status).toBe(401)
      expect((await anonymous.json()).error.code).toBe('token_missing')

      const alice = { authorization: `Bearer ${await stack.clerk.sessionToken({ sub: 'user_alice' })}` }
      const none = await fetch(url, { headers: alice })
      expect(none.status).toBe(404)
      expect((await none.json()).error.code).toBe('audio_not_found')

      const wav = sineWav(2)
      const posted = await fetch(url, {
        method: 'POST',
        headers: { ...alice, 'x-duration-ms': '2000', 'x-content-type': 'audio/wav' },
        body: wav,
      })
      expect(posted.status, await posted.clone().text()).toBe(201)
      const got = await fetch(url, { headers: alice })
      expect(got.status).toBe(200)
      expect(got.headers.get('content-type')).toBe('audio/wav')
      expect(Buffer.from(await got.arrayBuffer()).equals(wav)).toBe(true)
    })
  })
})
