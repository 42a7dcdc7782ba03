// `npx session-audio init` on fake Next.js projects in temp folders: the CLI runs as a user runs
// it (a child process, stdin not a TTY), and the files it leaves are compared byte for byte.
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import ts from 'typescript'
import { afterAll, describe, expect, it } from 'vitest'

const exec = promisify(execFile)
const repo = path.resolve(__dirname, '..')
const cli = path.join(repo, 'bin', 'session-audio.mjs')
const template = (name: string) => fs.readFileSync(path.join(repo, 'examples', 'convex', name), 'utf8')
const ROUTE = path.join('app', 'api', 'listening-sessions', '[sessionId]', 'audio', 'route.ts')
const ROUTE_SOURCE = `import { handleAudioGet, handleAudioPost } from 'session-audio'
export const runtime = 'nodejs'
export const GET = handleAudioGet
export const POST = handleAudioPost
`
const temps: string[] = []
afterAll(() => {
  for (const dir of temps) fs.rmSync(dir, { recursive: true, force: true })
})

/** A fake Next.js App Router project: `files` relative to its root. */
function project(files: Record<string, string> = {}, { next = true, app = 'app' } = {}) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sa-init-'))
  temps.push(root)
  const pkg = { name: 'app', private: true, dependencies: next ? { next: '16.0.0', react: '19.0.0' } : {} }
  fs.writeFileSync(path.join(root, 'package.json'), JSON.stringify(pkg))
  fs.writeFileSync(path.join(root, 'tsconfig.json'), '{}\n')
  if (app) fs.mkdirSync(path.join(root, app), { recursive: true })
  for (const [name, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, name)), { recursive: true })
    fs.writeFileSync(path.join(root, name), content)
  }
  return root
}

/** Every file under `root` with its content (to show a run wrote nothing). */
function snapshot(root: string) {
  const out: Record<string, string> = {}
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name)
      if (e.isDirectory()) walk(p)
      else out[path.relative(root, p)] = fs.readFileSync(p, 'utf8')
    }
  }
  walk(root)
  return out
}

async function init(root: string, args: string[] = [], env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await exec('node', [cli, 'init', ...args], {
      cwd: root,
      env: { PATH: process.env.PATH!, HOME: root, ...env },
    })
    return { code: 0, stdout, stderr }
  } catch (e: any) {
    return { code: e.code as number, stdout: e.stdout as string, stderr: e.stderr as string }
  }
}

const read = (root: string, name: string) => fs.readFileSync(path.join(root, name), 'utf8')

/** `after` is `before` with exactly `inserted` added at one place (and nothing else changed). */
function onlyInserted(before: string, after: string, inserted: string) {
  expect(after.length).toBe(before.length + inserted.length)
  let i = 0
  while (i < before.length && before[i] === after[i]) i++
  // The insertion starts at or before the first difference (it may repeat the text before it).
  const at = [...Array(i + 1).keys()].find((k) => before.slice(0, k) + inserted + before.slice(k) === after)
  expect(at, `${JSON.stringify(inserted)} inserted into ${JSON.stringify(before)}`).not.toBeUndefined()
}

// Each shape `init` edits, and the exact text it inserts.
const SHAPES: { name: string; file: string; before: string; inserted: string }[] = [
  {
    name: 'create-next-app (TypeScript): const nextConfig: NextConfig = { … }',
    file: 'next.config.ts',
    before: `import type { NextConfig } from "next";

const nextConfig: NextConfig = {
  /* config options here */
};

export default nextConfig;
`,
    inserted: `\n  serverExternalPackages: ["session-audio"],`,
  },
  {
    name: 'JSDoc-typed const, empty object (mjs)',
    file: 'next.config.mjs',
    before: `/** @type {import('next').NextConfig} */
const nextConfig = {};

export default nextConfig;
`,
    inserted: `\n  serverExternalPackages: ['session-audio'],\n`,
  },
  {
    name: 'export default { … } satisfies NextConfig',
    file: 'next.config.ts',
    before: `import type { NextConfig } from 'next'

export default {
  reactStrictMode: true,
  images: { remotePatterns: [{ hostname: 'img.example.com' }] },
} satisfies NextConfig
`,
    inserted: `\n  serverExternalPackages: ['session-audio'],`,
  },
  {
    name: 'module.exports = { … } on one line, with a regex and a template literal',
    file: 'next.config.js',
    before: `module.exports = { webpack: (c) => { c.module.rules.push({ test: /\\.svg$/, use: \`svgr-\${'x'}\` }); return c } }
`,
    inserted: ` serverExternalPackages: ['session-audio'],`,
  },
  {
    name: 'a config wrapped in a plugin: export default withMDX()(nextConfig)',
    file: 'next.config.mjs',
    before: `import createMDX from '@next/mdx'
const withMDX = createMDX({})
const nextConfig = {
  pageExtensions: ['js', 'jsx', 'md', 'mdx'], // "}" in a comment
}
export default withMDX(nextConfig)
`,
    inserted: `\n  serverExternalPackages: ['session-audio'],`,
  },
  {
    name: 'an existing serverExternalPackages array on one line',
    file: 'next.config.ts',
    before: `const nextConfig = {
  serverExternalPackages: ['sharp'],
}
export default nextConfig
`,
    inserted: `, 'session-audio'`,
  },
  {
    name: 'an existing serverExternalPackages array, one entry a line, trailing comma',
    file: 'next.config.js',
    before: `module.exports = {
  serverExternalPackages: [
    "sharp",
    "@prisma/client",
  ],
}
`,
    inserted: `\n    "session-audio",`,
  },
  {
    name: 'an existing empty serverExternalPackages array',
    file: 'next.config.mjs',
    before: `export default { serverExternalPackages: [] }
`,
    inserted: `'session-audio'`,
  },
]

describe('session-audio init', () => {
  for (const shape of SHAPES) {
    it(`next.config: ${shape.name}: byte-identical apart from the insertion`, async () => {
      const root = project({ [shape.file]: shape.before })
      const r = await init(root)
      expect(r.code, r.stderr).toBe(0)
      expect(r.stdout).toContain(`edit       ${shape.file} (adds 'session-audio' to serverExternalPackages)`)
      onlyInserted(shape.before, read(root, shape.file), shape.inserted)
      // Still a program TypeScript's parser reads without a syntax error.
      const parsed = ts.createSourceFile(
        shape.file,
        read(root, shape.file),
        ts.ScriptTarget.Latest,
        true,
        ts.ScriptKind.TS,
      )
      expect((parsed as unknown as { parseDiagnostics: unknown[] }).parseDiagnostics).toEqual([])
      // Idempotent: a second run leaves it as it is.
      const again = await init(root)
      expect(again.stdout).toContain(`unchanged  ${shape.file} (already lists 'session-audio'`)
      onlyInserted(shape.before, read(root, shape.file), shape.inserted)
    })
  }

  it('writes the route file, the next.config entry and the Convex template; a second run changes nothing', async () => {
    const root = project({ 'next.config.ts': 'export default {}\n' })
    const first = await init(root)
    expect(first.code, first.stderr).toBe(0)
    expect(read(root, ROUTE)).toBe(ROUTE_SOURCE)
    for (const name of ['listeningSessions.ts', 'entitlements.ts', 'auth.config.ts', 'schema.ts']) {
      expect(read(root, path.join('convex', name))).toBe(template(name))
    }
    expect(first.stdout).toContain(`create     ${ROUTE} (route file)`)
    // The variables for each side, a fresh secret, OIDC by default.
    const secret = /export SESSION_AUDIO_CONVEX_SECRET=([0-9a-f]{64})/.exec(first.stdout)
    expect(secret).not.toBeNull()
    for (const line of [
      'vercel env add CLERK_SECRET_KEY production',
      'vercel env add NEXT_PUBLIC_CONVEX_URL production',
      'printf %s "$SESSION_AUDIO_CONVEX_SECRET" | vercel env add SESSION_AUDIO_CONVEX_SECRET production',
      'npx convex env set SESSION_AUDIO_CONVEX_SECRET "$SESSION_AUDIO_CONVEX_SECRET"',
      'npx convex env set SESSION_AUDIO_BLOB_STORE_ID store_XXXXXXXX',
      'BLOB_STORE_ID and BLOB_WEBHOOK_PUBLIC_KEY',
      'SESSION_AUDIO_SWEEP_SECRET',
      'create a template named `convex`',
      'npx session-audio doctor',
    ]) {
      expect(first.stdout).toContain(line)
    }
    expect(first.stdout).not.toContain('BLOB_READ_WRITE_TOKEN')

    const before = snapshot(root)
    const second = await init(root)
    expect(second.code).toBe(0)
    expect(second.stdout).toContain('Nothing changed: every file init writes is already in place.')
    expect(second.stdout).not.toMatch(/^ {2}(create|edit|replace) /m)
    expect(snapshot(root)).toEqual(before)
  })

  it('--blob-auth read-write prints the token instead, and the store id it holds', async () => {
    const root = project({
      'next.config.ts': 'export default {}\n',
      '.env.local': 'BLOB_READ_WRITE_TOKEN=vercel_blob_rw_abc123_secretpart\n',
    })
    const r = await init(root, ['--blob-auth', 'read-write'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toContain('vercel env add BLOB_READ_WRITE_TOKEN production')
    expect(r.stdout).toContain('npx convex env set SESSION_AUDIO_BLOB_STORE_ID store_abc123')
    expect(r.stdout).not.toContain('secretpart')
  })

  it('a secret already in the environment is not replaced, and never printed', async () => {
    const existing = 'e'.repeat(64)
    const root = project({
      'next.config.ts': 'export default {}\n',
      '.env.local': `SESSION_AUDIO_CONVEX_SECRET=${existing}\n`,
    })
    const r = await init(root)
    expect(r.stdout).toContain('SESSION_AUDIO_CONVEX_SECRET is already set')
    expect(r.stdout).not.toContain(existing)
    expect(r.stdout).not.toMatch(/export SESSION_AUDIO_CONVEX_SECRET=/)
  })

  it('no secret from the environment appears in its output, in any mode', async () => {
    const secrets = {
      CLERK_SECRET_KEY: 'sk_test_init_never_prints_this_key',
      SESSION_AUDIO_CONVEX_SECRET: 'c0ffee'.repeat(11),
      SESSION_AUDIO_SWEEP_SECRET: 'sweep-secret-init-never-prints',
      VERCEL_OIDC_TOKEN: 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJpbml0In0.c2lnbmF0dXJlLW5ldmVyLXByaW50ZWQ',
      BLOB_READ_WRITE_TOKEN: 'vercel_blob_rw_abc123_tokensecretpartneverprinted',
    }
    const dotenv = `${Object.entries(secrets)
      .map(([k, v]) => `${k}=${v}`)
      .join('\n')}\n`
    const fromFile = project({ 'next.config.ts': 'export default {}\n', '.env.local': dotenv })
    const fromProcess = project({ 'next.config.ts': 'export default {}\n' })
    const conflicting = project({ [ROUTE]: '// mine\n', '.env.local': dotenv })
    const runs = [
      await init(fromFile, ['--dry-run']),
      await init(fromFile),
      await init(fromFile),
      await init(fromFile, ['--blob-auth', 'read-write']),
      await init(fromProcess, [], secrets),
      await init(fromProcess, ['--blob-auth', 'read-write'], secrets),
      await init(conflicting),
      await init(conflicting, ['--force']),
      await init(fromFile, ['--bogus']),
    ]
    expect(runs.map((r) => r.code)).toEqual([0, 0, 0, 0, 0, 0, 1, 0, 2])
    for (const r of runs) {
      for (const value of Object.values(secrets)) {
        expect(r.stdout).not.toContain(value)
        expect(r.stderr).not.toContain(value)
      }
    }
    // What it may say: that a secret is set, and the store id the token names (not a secret).
    expect(runs[1].stdout).toContain('SESSION_AUDIO_CONVEX_SECRET is already set')
    expect(runs[3].stdout).toContain('npx convex env set SESSION_AUDIO_BLOB_STORE_ID store_abc123')
  })

  it('--dry-run writes nothing and says what it would do', async () => {
    const config = `const nextConfig = {\n  reactStrictMode: true,\n}\nexport default nextConfig\n`
    const root = project({ 'next.config.mjs': config })
    const before = snapshot(root)
    const r = await init(root, ['--dry-run'])
    expect(r.code, r.stderr).toBe(0)
    expect(snapshot(root)).toEqual(before)
    expect(r.stdout).toContain('dry run: nothing is written')
    expect(r.stdout).toContain(`would create ${ROUTE}`)
    expect(r.stdout).toContain(`would edit next.config.mjs`)
    expect(r.stdout).toContain(`+  serverExternalPackages: ['session-audio'],`)
    expect(r.stdout).toMatch(/Dry run: 6 file\(s\) would change; nothing was written\./)
  })

  it('a route file that differs is kept (with the diff) unless --force; a different --route path', async () => {
    const mine = `import { createAudioHandlers } from 'session-audio'\nexport const runtime = 'nodejs'\nexport const { GET, POST } = createAudioHandlers({ cacheMaxAge: 60 })\n`
    const root = project({ 'next.config.ts': 'export default {}\n', [ROUTE]: mine })
    const kept = await init(root)
    expect(kept.code).toBe(1)
    expect(read(root, ROUTE)).toBe(mine)
    expect(kept.stdout).toContain(`kept       ${ROUTE}: it differs from session-audio's route file`)
    expect(kept.stdout).toContain(`-export const { GET, POST } = createAudioHandlers({ cacheMaxAge: 60 })`)
    expect(kept.stdout).toContain(`+export const GET = handleAudioGet`)
    expect(kept.stdout).toContain('rerun with --force to replace them')
    // The other files were still placed.
    expect(read(root, 'convex/listeningSessions.ts')).toBe(template('listeningSessions.ts'))

    const forced = await init(root, ['--force'])
    expect(forced.code, forced.stderr).toBe(0)
    expect(forced.stdout).toContain(`replace    ${ROUTE}`)
    expect(read(root, ROUTE)).toBe(ROUTE_SOURCE)

    const other = path.join('app', 'api', 'audio', '[sessionId]', 'route.ts')
    const custom = await init(root, ['--route', other])
    expect(custom.code, custom.stderr).toBe(0)
    expect(read(root, other)).toBe(ROUTE_SOURCE)
    // A folder names the route file in it.
    const folder = await init(root, ['--route=app/api/recordings/[sessionId]'])
    expect(folder.code, folder.stderr).toBe(0)
    expect(read(root, 'app/api/recordings/[sessionId]/route.ts')).toBe(ROUTE_SOURCE)
  })

  it('src/app is found; a JavaScript project gets route.js and a new next.config.mjs', async () => {
    const root = project({}, { app: path.join('src', 'app') })
    fs.rmSync(path.join(root, 'tsconfig.json'))
    const r = await init(root)
    expect(r.code, r.stderr).toBe(0)
    expect(read(root, 'src/app/api/listening-sessions/[sessionId]/audio/route.js')).toBe(ROUTE_SOURCE)
    expect(read(root, 'next.config.mjs')).toContain(`serverExternalPackages: ['session-audio'],`)
  })

  it('an own convex/schema.ts is left alone and the fields to add are printed; one with them is accepted', async () => {
    const own = `import { defineSchema, defineTable } from 'convex/server'\nimport { v } from 'convex/values'\nexport default defineSchema({ notes: defineTable({ body: v.string() }) })\n`
    const root = project({ 'next.config.ts': 'export default {}\n', 'convex/schema.ts': own })
    const r = await init(root)
    expect(r.code, r.stderr).toBe(0)
    expect(read(root, 'convex/schema.ts')).toBe(own)
    expect(r.stdout).toContain('not edited convex/schema.ts: it is your own schema')
    expect(r.stdout).toContain('export const sessionStatus = v.union(')
    expect(r.stdout).toContain(".index('by_audio_pathname', ['audioPathname'])")
    expect(r.stdout).toContain('entitlements: defineTable({')

    const merged = own.replace(
      'notes:',
      `${template('schema.ts').split('defineSchema({')[1].split('\n})')[0]},\n notes:`,
    )
    fs.writeFileSync(path.join(root, 'convex/schema.ts'), `export const sessionStatus = 1\n${merged}`)
    const again = await init(root)
    expect(again.stdout).toContain("unchanged  convex/schema.ts (your schema; it has session-audio's tables)")
  })

  it('convex.json moves the functions folder', async () => {
    const root = project({ 'next.config.ts': 'export default {}\n', 'convex.json': '{"functions": "src/convex/"}' })
    const r = await init(root)
    expect(r.code, r.stderr).toBe(0)
    expect(read(root, 'src/convex/listeningSessions.ts')).toBe(template('listeningSessions.ts'))
    expect(r.stdout).toContain('both write src/convex/_generated/, which\n    they import')
  })

  it('an app without the convex package is told to install it, and that next build needs convex/_generated/', async () => {
    // The template's functions import `convex` and ./_generated/server; `next build` type-checks
    // convex/ with the app (__test__/init-fresh.spec.ts builds such an app).
    const install = "Install Convex, which the template's functions import: npm install convex"
    const generated =
      /npx convex dev`; both write convex\/_generated\/, which\n {4}they import: `next build` fails until it is there/
    const without = await init(project({ 'next.config.ts': 'export default {}\n' }))
    expect(without.code, without.stderr).toBe(0)
    expect(without.stdout).toContain(`  1. ${install}`)
    expect(without.stdout).toMatch(generated)
    const root = project({ 'next.config.ts': 'export default {}\n' })
    const pkg = JSON.parse(read(root, 'package.json'))
    fs.writeFileSync(
      path.join(root, 'package.json'),
      JSON.stringify({ ...pkg, dependencies: { ...pkg.dependencies, convex: '^1.48.0' } }),
    )
    const withConvex = await init(root)
    expect(withConvex.code, withConvex.stderr).toBe(0)
    expect(withConvex.stdout).not.toContain('npm install convex')
    expect(withConvex.stdout).toMatch(generated)
  })

  it('a next.config it cannot edit safely is left byte-identical, with the exact line to add', async () => {
    const fn = `module.exports = (phase) => ({ reactStrictMode: phase !== 'x' })\n`
    const root = project({ 'next.config.js': fn })
    const r = await init(root)
    expect(r.code, r.stderr).toBe(0)
    expect(read(root, 'next.config.js')).toBe(fn)
    expect(r.stdout).toContain('not edited next.config.js: the exported config is not an object literal')
    expect(r.stdout).toContain(`serverExternalPackages: ['session-audio'],`)

    for (const [why, src] of [
      ['spreads another object', `const base = {}\nexport default { ...base, reactStrictMode: true }\n`],
      ['not an array literal', `const pkgs = ['a']\nexport default { serverExternalPackages: pkgs }\n`],
      ['something other than string literals', `export default { serverExternalPackages: [...pkgs] }\n`],
      [
        'serverComponentsExternalPackages',
        `export default { experimental: { serverComponentsExternalPackages: [] } }\n`,
      ],
      ['could not read the file', `export default { a: 'unterminated }\n`],
    ]) {
      const p = project({ 'next.config.mjs': src })
      const out = await init(p)
      expect(out.stdout).toContain(why)
      expect(read(p, 'next.config.mjs')).toBe(src)
    }
  })

  it('refuses outside a Next.js App Router project, writing nothing', async () => {
    const noNext = project({}, { next: false })
    const r1 = await init(noNext)
    expect(r1.code).toBe(1)
    expect(r1.stderr).toContain('has no `next` dependency: not a Next.js app')

    const noApp = project({}, { app: '' })
    const r2 = await init(noApp)
    expect(r2.code).toBe(1)
    expect(r2.stderr).toContain('no app/ or src/app/ folder')

    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'sa-init-'))
    temps.push(empty)
    const r3 = await init(empty)
    expect(r3.code).toBe(1)
    expect(r3.stderr).toContain('no package.json')
    expect(snapshot(empty)).toEqual({})
    expect(Object.keys(snapshot(noApp)).sort()).toEqual(['package.json', 'tsconfig.json'])
  })

  it('usage errors exit 2', async () => {
    const root = project()
    const bad = await init(root, ['--blob-auth', 'token'])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('--blob-auth is oidc or read-write')
    const unknown = await init(root, ['--yes'])
    expect([unknown.code, unknown.stderr]).toEqual([2, expect.stringContaining('unknown argument "--yes"')])
    expect(Object.keys(snapshot(root)).sort()).toEqual(['package.json', 'tsconfig.json'])
  })

  it('an unknown command exits 2 with the usage of all three', async () => {
    const r = await exec('node', [cli, 'setup'], { env: { PATH: process.env.PATH! } }).catch((e) => e)
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('unknown command "setup"')
    for (const c of ['session-audio init', 'session-audio doctor', 'session-audio sweep']) expect(r.stderr).toContain(c)
  })

  it('the template files init copies ship in the npm package', async () => {
    const { stdout } = await exec('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: repo })
    const files = JSON.parse(stdout)[0].files.map((f: { path: string }) => f.path)
    for (const f of ['schema.ts', 'listeningSessions.ts', 'entitlements.ts', 'auth.config.ts', 'README.md']) {
      expect(files).toContain(`examples/convex/${f}`)
    }
    for (const f of fs.readdirSync(path.join(repo, 'bin'))) expect(files).toContain(`bin/${f}`)
    // Nothing else of examples/ (the stand-in _generated/, the example app).
    expect(files.filter((f: string) => f.startsWith('examples/')).length).toBe(5)
  })
})
