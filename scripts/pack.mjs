// Pack what we publish, the napi-rs way: the main package (JS face, no binary) and this
// platform's package (the binary), as `npm pack` tarballs with stable names:
//   node scripts/pack.mjs <dest>   →  <dest>/session-audio.tgz, <dest>/session-audio-<platform>.tgz
// The binary is the newer of the portable one `npm run build:all` leaves in npm/<platform>/ and
// this checkout's own build, or with `{ prefer: 'portable' }` the portable one whenever it exists
// (the package test checks what is published, not the test build with its test-only hooks). Work happens under node_modules/.cache; the repository is untouched.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

/** napi-rs's name for this machine's package suffix, e.g. `linux-x64-gnu`. */
export function platformSuffix() {
  const { platform, arch } = process
  if (platform === 'linux')
    return `linux-${arch}-${process.report.getReport().header.glibcVersionRuntime ? 'gnu' : 'musl'}`
  if (platform === 'win32') return `win32-${arch}-msvc`
  return `${platform}-${arch}`
}

export function packPackages(dest, { prefer = 'newest' } = {}) {
  const run = (cmd, args, cwd) => execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  const suffix = platformSuffix()
  const binary = `session-audio.${suffix}.node`
  const portable = path.join(repo, 'npm', suffix, binary)
  const candidates = [portable, path.join(repo, binary)].filter((f) => fs.existsSync(f))
  const source =
    prefer === 'portable' && fs.existsSync(portable)
      ? portable
      : candidates.sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs)[0]
  if (!source) throw new Error(`no ${binary}: build first (npm run build)`)
  // Inside the project: napi's CLI refuses package folders outside it.
  const cache = path.join(repo, 'node_modules', '.cache')
  fs.mkdirSync(cache, { recursive: true })
  const work = fs.mkdtempSync(path.join(cache, 'session-audio-pack-'))
  run('npx', ['napi', 'create-npm-dirs', '--npm-dir', path.relative(repo, path.join(work, 'npm'))], repo)
  const platformDir = path.join(work, 'npm', suffix)
  fs.copyFileSync(source, path.join(platformDir, binary))
  fs.mkdirSync(dest, { recursive: true })
  const pack = (cwd) => JSON.parse(run('npm', ['pack', '--json', '--pack-destination', work], cwd))[0]
  const main = pack(repo)
  const plat = pack(platformDir)
  const files = (p) => p.files.map((f) => f.path)
  const out = {
    main: path.join(dest, 'session-audio.tgz'),
    platform: path.join(dest, `session-audio-${suffix}.tgz`),
    mainFiles: files(main),
    platformFiles: files(plat),
  }
  fs.copyFileSync(path.join(work, main.filename), out.main)
  fs.copyFileSync(path.join(work, plat.filename), out.platform)
  fs.rmSync(work, { recursive: true, force: true })
  return out
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  console.log(JSON.stringify(packPackages(path.resolve(process.argv[2] || 'pack'))))
}
