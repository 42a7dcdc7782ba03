// The portable platform binaries `scripts/build-all.sh` builds (cargo-zigbuild + zig): glibc floor
// 2.17 for the gnu targets, no glibc at all for musl, the right machine and libraries, and — for
// the one this machine can run — that Node loads it and it serves a request. The two macOS binaries
// cannot be loaded here: scripts/macho-check reads each as a Mac's loader needs it (thin Mach-O
// dylib for its CPU, minimum macOS at the floor, only /usr/lib libraries, the napi entry point
// exported, a valid code signature), and the loader binding.js is run as on a Mac to see that it
// asks for exactly the package and file npm/darwin-*/package.json describe. The checker is itself
// tested on small dylibs zig links here: one a Mac would load, and ones that link an Apple
// framework, a Homebrew library, lack the entry point or carry a broken signature.
// `npm run test:release` runs build-all and builds the checker first (`npm test` leaves this spec
// out). A target build-all had to skip has no binary and is reported, not failed.
import { execFileSync, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const repo = path.resolve(__dirname, '..')
const FLOOR = [2, 17]
const binary = (platform: string) => path.join(repo, 'npm', platform, `session-audio.${platform}.node`)
const TARGETS = [
  { platform: 'linux-x64-gnu', machine: /Advanced Micro Devices X86-64/, libc: 'gnu' },
  { platform: 'linux-arm64-gnu', machine: /AArch64/, libc: 'gnu' },
  { platform: 'linux-x64-musl', machine: /Advanced Micro Devices X86-64/, libc: 'musl' },
  { platform: 'linux-arm64-musl', machine: /AArch64/, libc: 'musl' },
] as const

/** Every GLIBC_x.y[.z] version a binary's dynamic symbols need. */
function glibcVersions(file: string): number[][] {
  const out = execFileSync('objdump', ['-T', file], { encoding: 'utf8' })
  return [...new Set([...out.matchAll(/\bGLIBC_(\d+)\.(\d+)(?:\.(\d+))?\b/g)].map((m) => m[0]))].map((v) =>
    v.slice(6).split('.').map(Number),
  )
}
const newer = (a: number[], b: number[]) => a[0] > b[0] || (a[0] === b[0] && a[1] > b[1])
const needed = (file: string) =>
  [
    ...execFileSync('readelf', ['-d', file], { encoding: 'utf8' }).matchAll(
      /\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g,
    ),
  ].map((m) => m[1])

describe('portable platform binaries', () => {
  it('linux-x64-gnu was built (this machine can always build it)', () => {
    expect(fs.existsSync(binary('linux-x64-gnu')), 'run scripts/build-all.sh').toBe(true)
  })

  for (const t of TARGETS) {
    describe(t.platform, () => {
      const file = binary(t.platform)
      const built = fs.existsSync(file)
      if (!built) console.log(`${t.platform}: not built here (see scripts/build-all.sh output)`)

      it.runIf(built)('is a shared object for the right machine', () => {
        const header = execFileSync('readelf', ['-h', file], { encoding: 'utf8' })
        expect(header).toMatch(/Type:\s+DYN/)
        expect(header).toMatch(t.machine)
      })

      if (t.libc === 'gnu') {
        it.runIf(built)(`needs no glibc newer than ${FLOOR.join('.')} and only the C runtime's libraries`, () => {
          const versions = glibcVersions(file)
          expect(versions.length).toBeGreaterThan(0)
          expect(versions.filter((v) => newer(v, FLOOR)).map((v) => `GLIBC_${v.join('.')}`)).toEqual([])
          for (const lib of needed(file))
            expect(lib).toMatch(/^(libc|libm|libdl|libpthread|librt|libgcc_s|ld-linux-[\w-]+)\.so/)
        })
      } else {
        it.runIf(built)('does not link glibc at all, only the musl C library', () => {
          expect(glibcVersions(file)).toEqual([])
          expect(needed(file)).toEqual(['libc.so'])
        })
      }
    })
  }

  it('the linux-x64-gnu binary loads in Node and serves a request (a 503 naming the missing setting)', () => {
    const script = `
      const { handleAudioGet } = require(${JSON.stringify(path.join(repo, 'index.js'))})
      handleAudioGet(new Request('http://x/'), { params: { sessionId: 's' } })
        .then(async (r) => console.log(JSON.stringify({ status: r.status, body: await r.json() })))
    `
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      NAPI_RS_NATIVE_LIBRARY_PATH: binary('linux-x64-gnu'),
      SESSION_AUDIO_LOG: 'off',
    }
    delete env.NEXT_PUBLIC_CONVEX_URL
    const out = JSON.parse(execFileSync(process.execPath, ['-e', script], { env, encoding: 'utf8' }).trim())
    expect(out).toMatchObject({ status: 503, body: { error: { code: 'config_missing' } } })
  })
})

// The floors scripts/build-all.sh sets (MACOSX_DEPLOYMENT_TARGET); docs/development.md, "Platforms and release", says why.
const MACOS = [
  { platform: 'darwin-arm64', arch: 'arm64', zigTarget: 'aarch64-macos', floor: '11.0' },
  { platform: 'darwin-x64', arch: 'x86_64', zigTarget: 'x86_64-macos', floor: '10.15' },
] as const
const CHECKER = path.join(repo, 'scripts', 'macho-check', 'target', 'debug', 'macho-check')

type MachoReport = {
  fileType: string
  cpu: string
  versionCommand: string
  minOs: string
  sdk: string
  dylibs: string[]
  rpaths: string[]
  exportsNapiEntry: boolean
  exportCount: number
  codeSignature: string
  problems: string[]
}
function machoCheck(file: string, arch: string, floor: string): { status: number | null; report: MachoReport } {
  const r = spawnSync(CHECKER, ['--arch', arch, '--min-os', floor, file], { encoding: 'utf8' })
  if (r.status !== 0 && r.status !== 1) throw new Error(`macho-check failed (${r.status}): ${r.stderr}`)
  return { status: r.status, report: JSON.parse(r.stdout) }
}

/** What binding.js require()s on a Mac of this CPU, in order (nothing is found: every lookup fails). */
function loaderRequests(nodeArch: string): string[] {
  const script = `
    const Module = require('node:module')
    Object.defineProperty(process, 'platform', { value: 'darwin' })
    Object.defineProperty(process, 'arch', { value: ${JSON.stringify(nodeArch)} })
    const asked = []
    const resolve = Module._resolveFilename
    Module._resolveFilename = function (request, parent, ...rest) {
      if (parent && parent.filename === ${JSON.stringify(path.join(repo, 'binding.js'))} && !Module.isBuiltin(request)) {
        asked.push(request)
        const e = new Error('not here: ' + request)
        e.code = 'MODULE_NOT_FOUND'
        throw e
      }
      return resolve.call(this, request, parent, ...rest)
    }
    try { require(${JSON.stringify(path.join(repo, 'binding.js'))}) } catch {}
    console.log(JSON.stringify(asked))
  `
  const env: NodeJS.ProcessEnv = { ...process.env }
  for (const k of Object.keys(env)) if (k.startsWith('NAPI_RS_')) delete env[k]
  return JSON.parse(execFileSync(process.execPath, ['-e', script], { env, encoding: 'utf8' }).trim())
}

describe('macOS binaries (built here by zig, checked as a Mac loads them)', () => {
  it('macho-check was built (scripts/test-release.sh builds it)', () => {
    expect(fs.existsSync(CHECKER), 'cargo build --manifest-path scripts/macho-check/Cargo.toml').toBe(true)
  })

  for (const t of MACOS) {
    describe(t.platform, () => {
      const file = binary(t.platform)
      const built = fs.existsSync(file)
      if (!built) console.log(`${t.platform}: not built here (see scripts/build-all.sh output)`)

      it.runIf(built)(
        `a ${t.arch} dylib for macOS ${t.floor}+, linking only /usr/lib, exporting the napi entry point`,
        () => {
          const { status, report } = machoCheck(file, t.arch, t.floor)
          console.log(`${t.platform}: ${JSON.stringify(report)}`)
          expect(report.problems).toEqual([])
          expect(status).toBe(0)
          expect(report).toMatchObject({
            fileType: 'DYLIB',
            cpu: t.arch,
            versionCommand: 'LC_BUILD_VERSION',
            minOs: t.floor,
            rpaths: [],
            exportsNapiEntry: true,
          })
          expect(report.dylibs).toContain('/usr/lib/libSystem.B.dylib')
          if (t.arch === 'arm64') expect(report.codeSignature).toMatch(/page hashes valid/)
        },
      )

      it(`its package.json (os, cpu, main) is what binding.js asks for on a ${t.arch} Mac`, () => {
        const pkg = JSON.parse(fs.readFileSync(path.join(repo, 'npm', t.platform, 'package.json'), 'utf8'))
        const main = JSON.parse(fs.readFileSync(path.join(repo, 'package.json'), 'utf8'))
        const nodeArch = t.arch === 'x86_64' ? 'x64' : 'arm64'
        const asked = loaderRequests(nodeArch)
        // The loader tries the file next to it, then the platform package, by these exact names.
        expect(asked).toContain(pkg.name)
        expect(asked).toContain(`./${pkg.main}`)
        expect(asked.indexOf(`./${pkg.main}`)).toBeLessThan(asked.indexOf(pkg.name))
        // npm installs the optional platform package only where os and cpu match the machine.
        expect(pkg.os).toEqual(['darwin'])
        expect(pkg.cpu).toEqual([nodeArch])
        expect(pkg.main).toBe(`session-audio.${t.platform}.node`)
        expect(pkg.files).toContain(pkg.main)
        expect(pkg.version).toBe(main.version)
        if (built) expect(fs.existsSync(path.join(repo, 'npm', t.platform, pkg.main))).toBe(true)
      })
    })
  }
})

describe('macho-check rejects what a Mac would not load (dylibs zig links here)', () => {
  let work: string
  let zig: string
  // A stand-in for a library the linker can name but a user's Mac may not have: a text stub (.tbd,
  // as Apple's SDKs ship) with the real install name, so the dylib records exactly that path.
  const stub = (file: string, installName: string, symbol: string) => {
    fs.mkdirSync(path.dirname(file), { recursive: true })
    fs.writeFileSync(
      file,
      [
        '--- !tapi-tbd',
        'tbd-version: 4',
        'targets: [ arm64-macos, x86_64-macos ]',
        `install-name: '${installName}'`,
        'exports:',
        '  - targets: [ arm64-macos, x86_64-macos ]',
        `    symbols: [ _${symbol} ]`,
        '...',
        '',
      ].join('\n'),
    )
  }
  /** Links `source` (C) into a dylib for macOS `target` (zig: `aarch64-macos.11.0`), with `args`. */
  const link = (name: string, target: string, source: string, args: string[] = []) => {
    fs.writeFileSync(path.join(work, `${name}.c`), source)
    const out = path.join(work, `${name}.dylib`)
    execFileSync(zig, ['cc', '-target', target, '-shared', '-nostdlib', '-o', out, `${name}.c`, '-lSystem', ...args], {
      cwd: work,
      env: { ...process.env, ZIG_GLOBAL_CACHE_DIR: path.join(work, 'zig-cache') },
    })
    return out
  }
  const ADDON = 'void *napi_register_module_v1(void *env, void *exports) { return exports; }\n'
  const uses = (fn: string) =>
    `extern int ${fn}(void *, void *);\nvoid *napi_register_module_v1(void *env, void *exports) { ${fn}(0, 0); return exports; }\n`

  beforeAll(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'macho-check-'))
    zig = path.join(
      execFileSync('python3', ['-c', 'import os, ziglang; print(os.path.dirname(ziglang.__file__))'], {
        encoding: 'utf8',
      }).trim(),
      'zig',
    )
    stub(
      path.join(work, 'Frameworks', 'Security.framework', 'Security.tbd'),
      '/System/Library/Frameworks/Security.framework/Versions/A/Security',
      'SecTrustEvaluateWithError',
    )
    stub(path.join(work, 'brew', 'libssl.tbd'), '/opt/homebrew/opt/openssl@3/lib/libssl.3.dylib', 'SSL_new')
  }, 120_000)
  afterAll(() => fs.rmSync(work, { recursive: true, force: true }))

  for (const t of MACOS) {
    describe(t.platform, () => {
      const target = `${t.zigTarget}.${t.floor}`

      it('accepts a dylib that links only libSystem and exports the entry point (the control)', () => {
        const { status, report } = machoCheck(link(`ok-${t.arch}`, target, ADDON), t.arch, t.floor)
        expect(report.problems).toEqual([])
        expect(status).toBe(0)
      })

      it('rejects one that links an Apple framework (Security, as native-tls would)', () => {
        const file = link(`framework-${t.arch}`, target, uses('SecTrustEvaluateWithError'), [
          '-F',
          'Frameworks',
          '-framework',
          'Security',
        ])
        const { status, report } = machoCheck(file, t.arch, t.floor)
        expect(report.dylibs).toContain('/System/Library/Frameworks/Security.framework/Versions/A/Security')
        expect(report.problems).toEqual([expect.stringMatching(/Security\.framework.*Apple framework/)])
        expect(status).toBe(1)
      })

      it('rejects one that links a Homebrew library', () => {
        const file = link(`brew-${t.arch}`, target, uses('SSL_new'), ['-L', 'brew', '-lssl'])
        const { status, report } = machoCheck(file, t.arch, t.floor)
        expect(report.problems).toEqual([expect.stringMatching(/\/opt\/homebrew\/.*libssl.*Homebrew/)])
        expect(status).toBe(1)
      })

      it('rejects one without the napi entry point, for another CPU, or for a newer macOS', () => {
        const noEntry = link(`noentry-${t.arch}`, target, 'int not_an_addon(void) { return 0; }\n')
        expect(machoCheck(noEntry, t.arch, t.floor).report.problems).toEqual([
          expect.stringMatching(/napi_register_module_v1 is not exported/),
        ])
        const other = MACOS.find((o) => o.arch !== t.arch)!
        const wrongCpu = link(`cpu-${t.arch}`, `${other.zigTarget}.${t.floor}`, ADDON)
        expect(machoCheck(wrongCpu, t.arch, t.floor).report.problems).toContainEqual(
          `built for ${other.arch}, expected ${t.arch}`,
        )
        const newer = link(`newer-${t.arch}`, `${t.zigTarget}.14.0`, ADDON)
        expect(machoCheck(newer, t.arch, t.floor).report.problems).toEqual([
          `minimum macOS 14.0, expected the floor ${t.floor}`,
        ])
      })
    })
  }

  it('rejects an arm64 dylib whose code signature no longer matches its bytes', () => {
    const file = link('resigned-arm64', 'aarch64-macos.11.0', ADDON)
    const good = machoCheck(file, 'arm64', '11.0').report
    expect(good.codeSignature).toMatch(/^ad-hoc, \d+ SHA-256 page hashes valid$/)
    const bytes = fs.readFileSync(file)
    bytes[bytes.length >> 2] ^= 0xff // inside the signed range (the signature sits at the end)
    fs.writeFileSync(file, bytes)
    expect(machoCheck(file, 'arm64', '11.0').report.problems).toContainEqual(
      expect.stringMatching(/does not match its hash/),
    )
  })
})
