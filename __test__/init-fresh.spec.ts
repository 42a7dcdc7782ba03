// Issue #27's first "Done when", in the smallest Next.js 16 App Router project a user could have
// (examples/nextjs, which e2e/init.e2e.ts covers, carries pages, an API route and middleware of its
// own): package.json with next/react/react-dom at examples/nextjs's versions and TypeScript, a
// layout, a page, and a next.config.ts with two other settings. session-audio is installed from the
// packed tarballs as users get it (scripts/pack.mjs), `npx session-audio init` runs without a
// terminal, the other next.config settings stay byte-identical, a second init changes nothing,
// `npm run build` passes, and the route init wrote answers through `next start` against the local
// stack: 401 without a token, a real recording uploaded, then played back with a Range (206).
//
// Between init and the build, the app does what init's to-do list asks of an app without Convex:
// `npm install convex`, and `npx convex dev`, which writes convex/_generated/ (the template's
// functions import it, and `next build` type-checks convex/). That command needs a real Convex
// deployment; here the repository's stand-in (examples/convex/_generated/, what the local stack's
// Convex runs) takes the generated folder's place. The fresh app's own convex/ (init's copy of
// examples/convex) is not deployed anywhere: the local stack's Convex already runs examples/convex,
// the template init copies (checked below to be the same bytes), so the route talks to exactly
// those functions.
//
// A release spec (vitest.release.config.mjs): it installs Next.js from the npm registry (through
// npm's cache, --prefer-offline) and builds an app, which `npm test` has no time for.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { packPackages, platformSuffix } from '../scripts/pack.mjs'
import { startLocalStack } from '../stack/local.mjs'
import { startExampleApp } from '../stack/app.mjs'

const repo = path.resolve(__dirname, '..')
const ROUTE = path.join('app', 'api', 'listening-sessions', '[sessionId]', 'audio', 'route.ts')
const TEMPLATE = ['listeningSessions.ts', 'entitlements.ts', 'auth.config.ts', 'schema.ts']
const example = JSON.parse(fs.readFileSync(path.join(repo, 'examples', 'nextjs', 'package.json'), 'utf8'))
const CONFIG_OPENING = 'const nextConfig: NextConfig = {'
// As create-next-app writes it, with two settings a user may well have set.
const CONFIG_BEFORE = [
  "import type { NextConfig } from 'next'",
  '',
  CONFIG_OPENING,
  '  reactStrictMode: true,',
  '  poweredByHeader: false,',
  '}',
  '',
  'export default nextConfig',
  '',
].join('\n')

/** Seconds each step took, printed at the end: the spec's cost in the release run. */
const timings: [string, number][] = []
async function timed<T>(step: string, f: () => T | Promise<T>): Promise<T> {
  const start = Date.now()
  try {
    return await f()
  } finally {
    timings.push([step, (Date.now() - start) / 1000])
  }
}

function run(cmd: string, args: string[], cwd: string) {
  try {
    return execFileSync(cmd, args, {
      cwd,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NEXT_TELEMETRY_DISABLED: '1' },
    })
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; message: string }
    throw new Error(`${err.message}\n${err.stdout ?? ''}\n${err.stderr ?? ''}`)
  }
}

let work: string
let app: string
const write = (name: string, text: string) => {
  fs.mkdirSync(path.dirname(path.join(app, name)), { recursive: true })
  fs.writeFileSync(path.join(app, name), text)
}
const read = (name: string) => fs.readFileSync(path.join(app, name), 'utf8')

/** Every file of the app, without its installs and build output. */
function snapshot() {
  const out: Record<string, string> = {}
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      if (['node_modules', '.next'].includes(e.name)) continue
      const p = path.join(dir, e.name)
      if (e.isDirectory()) walk(p)
      else out[path.relative(app, p)] = fs.readFileSync(p, 'utf8')
    }
  }
  walk(app)
  return out
}

/** `npx session-audio init`, as a user runs it in the app: the installed package's command, no terminal. */
function init() {
  return run('npx', ['--no-install', 'session-audio', 'init'], app)
}

beforeAll(async () => {
  // On a clean clone `npm run test:release` has the portable binary (scripts/build-all.sh) and
  // `npm test`'s own build; run alone, the spec builds the addon as `npm run build` does.
  const suffix = platformSuffix()
  const binary = `session-audio.${suffix}.node`
  if (![path.join(repo, 'npm', suffix, binary), path.join(repo, binary)].some((f) => fs.existsSync(f))) {
    await timed('addon build (none found)', () => run('bash', ['scripts/ensure-built.sh'], repo))
  }
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'session-audio-init-fresh-'))
  // The same packing as package.spec.ts and the example app: the portable binary when there is one.
  const packed = await timed('pack', () => packPackages(path.join(work, 'tarballs'), { prefer: 'portable' }))
  app = path.join(work, 'app')
  write(
    'package.json',
    JSON.stringify(
      {
        name: 'fresh-app',
        private: true,
        scripts: { build: 'next build', start: 'next start' },
        dependencies: {
          next: example.dependencies.next,
          react: example.dependencies.react,
          'react-dom': example.dependencies['react-dom'],
        },
        devDependencies: {
          typescript: example.devDependencies.typescript,
          '@types/node': example.devDependencies['@types/node'],
          '@types/react': example.devDependencies['@types/react'],
        },
      },
      null,
      2,
    ) + '\n',
  )
  write(
    'tsconfig.json',
    JSON.stringify(
      {
        compilerOptions: {
          target: 'ES2022',
          lib: ['dom', 'dom.iterable', 'esnext'],
          skipLibCheck: true,
          strict: true,
          noEmit: true,
          module: 'esnext',
          moduleResolution: 'bundler',
          isolatedModules: true,
          jsx: 'react-jsx',
          plugins: [{ name: 'next' }],
        },
        include: ['next-env.d.ts', '**/*.ts', '**/*.tsx', '.next/types/**/*.ts'],
        exclude: ['node_modules'],
      },
      null,
      2,
    ) + '\n',
  )
  write(
    'app/layout.tsx',
    [
      "import type { ReactNode } from 'react'",
      '',
      'export default function RootLayout({ children }: { children: ReactNode }) {',
      '  return (',
      '    <html lang="en">',
      '      <body>{children}</body>',
      '    </html>',
      '  )',
      '}',
      '',
    ].join('\n'),
  )
  write('app/page.tsx', 'export default function Home() {\n  return <main>Hello</main>\n}\n')
  write('next.config.ts', CONFIG_BEFORE)
  // Both tarballs by path, as `npm install session-audio` resolves the package and its platform
  // package; everything else from npm's cache when it has it (the example app's install fills it).
  await timed('npm install', () =>
    run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', packed.main, packed.platform], app),
  )
}, 600_000)

afterAll(async () => {
  if (work) await timed('cleanup', () => fs.rmSync(work, { recursive: true, force: true }))
  console.log(`init-fresh timings (s): ${timings.map(([s, t]) => `${s} ${t.toFixed(1)}`).join(', ')}`)
})

describe('`npx session-audio init` in a fresh minimal Next.js 16 App Router project', () => {
  it('has no session-audio files before init', () => {
    expect(fs.existsSync(path.join(app, ROUTE))).toBe(false)
    expect(fs.existsSync(path.join(app, 'convex'))).toBe(false)
    expect(read('next.config.ts')).not.toContain('session-audio')
  })

  it('writes the route file, the Convex template and the next.config entry, other settings byte-identical', async () => {
    const out = await timed('init', init)
    expect(out).toContain(`create     ${ROUTE} (route file)`)
    expect(out).toContain('create     convex/listeningSessions.ts (Convex template)')
    expect(read(ROUTE)).toBe(
      "import { handleAudioGet, handleAudioPost } from 'session-audio'\n" +
        "export const runtime = 'nodejs'\n" +
        'export const GET = handleAudioGet\n' +
        'export const POST = handleAudioPost\n',
    )
    // Exactly one line inserted; reactStrictMode, poweredByHeader and every other byte as before.
    expect(read('next.config.ts')).toBe(
      CONFIG_BEFORE.replace(CONFIG_OPENING, `${CONFIG_OPENING}\n  serverExternalPackages: ['session-audio'],`),
    )
    // What the local stack's Convex runs, byte for byte: the route below talks to these functions.
    for (const f of TEMPLATE) {
      expect(read(path.join('convex', f))).toBe(fs.readFileSync(path.join(repo, 'examples', 'convex', f), 'utf8'))
    }
    expect(out).toContain("Install Convex, which the template's functions import: npm install convex")
  })

  it("the app follows init's to-do: installs convex, and gets convex/_generated/ (stand-in for `npx convex dev`)", async () => {
    await timed('npm install convex', () =>
      run(
        'npm',
        ['install', '--prefer-offline', '--no-audit', '--no-fund', `convex@${example.dependencies.convex}`],
        app,
      ),
    )
    fs.cpSync(path.join(repo, 'examples', 'convex', '_generated'), path.join(app, 'convex', '_generated'), {
      recursive: true,
    })
    expect(JSON.parse(read('package.json')).dependencies.convex).toBeDefined()
  })

  it('a second init changes nothing', async () => {
    const before = snapshot()
    const out = await timed('second init', init)
    expect(out).toContain('Nothing changed: every file init writes is already in place.')
    expect(out).toContain(`unchanged  ${ROUTE} (route file)`)
    expect(out).toContain("unchanged  next.config.ts (already lists 'session-audio' in serverExternalPackages)")
    expect(out).not.toMatch(/^ {2}(create|edit|replace|kept) /m)
    expect(out).not.toContain('npm install convex')
    expect(snapshot()).toEqual(before)
  })

  it('`npm run build` of the app passes', async () => {
    const out = await timed('npm run build', () => run('npm', ['run', 'build'], app))
    // The route is a dynamic server function in the build's route table.
    expect(out).toContain('/api/listening-sessions/[sessionId]/audio')
    expect(fs.existsSync(path.join(app, '.next', 'BUILD_ID'))).toBe(true)
  }, 600_000)

  describe('its route, through next start against the local stack', () => {
    let stack: Awaited<ReturnType<typeof startLocalStack>>
    let server: Awaited<ReturnType<typeof startExampleApp>>
    beforeAll(async () => {
      stack = await timed('local stack', () => startLocalStack({ dir: path.join(work, 'stack') }))
      server = await timed('next start', () => startExampleApp({ dir: app, env: stack.env, port: 0 }))
    })
    afterAll(async () => {
      await timed('stop', async () => {
        await server?.close()
        await stack?.close()
      })
    })

    it('refuses a caller without a token (401)', async () => {
      const id = await stack.convex.insertSession({ userId: 'user_alice', status: 'recording' })
      const res = await fetch(`${server.url}/api/listening-sessions/${id}/audio`)
      expect(res.status).toBe(401)
      expect((await res.json()).error.code).toBe('token_missing')
    })

    it('stores a real recording uploaded by its owner and plays it back with a Range (206)', async () => {
      const id = await stack.convex.insertSession({ userId: 'user_alice', status: 'recording' })
      const url = `${server.url}/api/listening-sessions/${id}/audio`
      const alice = { authorization: `Bearer ${await stack.clerk.sessionToken({ sub: 'user_alice' })}` }
      const webm = fs.readFileSync(path.join(__dirname, 'fixtures', 'audio', 'tone-5s.webm'))
      const posted = await fetch(url, {
        method: 'POST',
        // As the browser's MediaRecorder names it.
        headers: { ...alice, 'x-duration-ms': '5000', 'x-content-type': 'audio/webm;codecs=opus' },
        body: webm,
      })
      expect(posted.status, await posted.clone().text()).toBe(201)
      expect(await posted.json()).toMatchObject({ sessionId: id, status: 'transcribing', sizeBytes: webm.length })
      const got = await fetch(url, { headers: { ...alice, range: 'bytes=100-1099' } })
      expect(got.status).toBe(206)
      expect(got.headers.get('content-type')).toBe('audio/webm;codecs=opus')
      expect(got.headers.get('content-range')).toBe(`bytes 100-1099/${webm.length}`)
      expect(Buffer.from(await got.arrayBuffer()).equals(webm.subarray(100, 1100))).toBe(true)
      // Someone else's token does not reach it.
      const bob = { authorization: `Bearer ${await stack.clerk.sessionToken({ sub: 'user_bob' })}` }
      const other = await fetch(url, { headers: bob })
      expect(other.status).toBe(404)
      expect((await other.json()).error.code).toBe('session_not_found')
    })
  })
})
