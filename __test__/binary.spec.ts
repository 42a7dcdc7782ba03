// The portable platform binaries `scripts/build-all.sh` builds (cargo-zigbuild + zig): glibc floor
// 2.17 for the gnu targets, no glibc at all for musl, the right machine and libraries, and — for
// the one this machine can run — that Node loads it and it serves a request. `npm run test:release`
// runs build-all first (`npm test` leaves this spec out). A target build-all had to skip has no
// binary and is reported, not failed.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'

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
