// What `init` and `doctor` share: the Next.js project in a folder (its app dir, route file,
// next.config, convex/ folder), the template files shipped with the package, a line diff, and the
// environment loaded as Next.js loads it.
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

/** The Convex template, one source of truth: examples/convex/ ships in the npm package. */
export const TEMPLATE_DIR = path.join(packageRoot, 'examples', 'convex')
/** The functions copied as they are; schema.ts is merged (or written when the app has none). */
export const TEMPLATE_FUNCTIONS = ['listeningSessions.ts', 'entitlements.ts', 'auth.config.ts']

export const ROUTE_SUBPATH = path.join('api', 'listening-sessions', '[sessionId]', 'audio')

/** The four-line route file of the README. */
export const ROUTE_SOURCE = `import { handleAudioGet, handleAudioPost } from 'session-audio'
export const runtime = 'nodejs'
export const GET = handleAudioGet
export const POST = handleAudioPost
`

/** A command line the CLI cannot run: printed with the command's usage, exit code 2. */
export class UsageError extends Error {}

/**
 * Walk a command's arguments (`--flag value` or `--flag=value`): `take(flag, value, arg)` for each,
 * where `value()` reads that flag's value (a missing or empty one is a UsageError).
 */
export function eachFlag(args, take) {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? arg.split(/=(.*)/s) : [arg, undefined]
    const value = () => {
      const v = inline ?? args[++i]
      if (v === undefined || v === '') throw new UsageError(`${flag} needs a value`)
      return v
    }
    take(flag, value, arg)
  }
}

export const NEXT_CONFIG_NAMES = ['next.config.ts', 'next.config.mjs', 'next.config.js']

const readJson = (file) => {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'))
  } catch {
    return null
  }
}

/**
 * The Next.js App Router project at `dir`: `{ root, appDir, typescript, nextConfig, convexDir }`,
 * or `{ why }` when it is not one.
 */
export function findProject(dir) {
  const root = path.resolve(dir)
  const pkg = readJson(path.join(root, 'package.json'))
  if (!pkg) return { why: `no package.json in ${root}: run this in your Next.js app's folder` }
  const deps = { ...pkg.dependencies, ...pkg.devDependencies }
  if (!deps.next) return { why: `${path.join(root, 'package.json')} has no \`next\` dependency: not a Next.js app` }
  const appDir = ['app', path.join('src', 'app')].map((d) => path.join(root, d)).find((d) => isDir(d))
  if (!appDir) return { why: `no app/ or src/app/ folder in ${root}: session-audio needs the App Router` }
  const nextConfig = NEXT_CONFIG_NAMES.map((n) => path.join(root, n)).find((f) => fs.existsSync(f)) ?? null
  // convex.json may move the functions folder (`"functions": "src/convex/"`).
  const convexJson = readJson(path.join(root, 'convex.json'))
  const convexDir = path.join(root, typeof convexJson?.functions === 'string' ? convexJson.functions : 'convex')
  return {
    root,
    appDir,
    typescript: fs.existsSync(path.join(root, 'tsconfig.json')),
    nextConfig,
    convexDir,
    convexInstalled: Boolean(deps.convex),
  }
}

export const isDir = (p) => {
  try {
    return fs.statSync(p).isDirectory()
  } catch {
    return false
  }
}

const SCRIPT = /\.(ts|js|mjs|tsx|jsx)$/

/**
 * The route file for `project`. `route` overrides: a path relative to the project root, either the
 * file (`…/route.ts`) or its folder (`app/api/audio/[sessionId]`).
 */
export function routeFile(project, route) {
  const dir = route ? path.resolve(project.root, route) : path.join(project.appDir, ROUTE_SUBPATH)
  if (route && SCRIPT.test(route)) return dir
  return path.join(dir, project.typescript ? 'route.ts' : 'route.js')
}

/** The existing route file, whichever extension (doctor). */
export function existingRouteFile(project, route) {
  const dir = route ? path.resolve(project.root, route) : path.join(project.appDir, ROUTE_SUBPATH)
  if (route && SCRIPT.test(route)) return fs.existsSync(dir) ? dir : null
  for (const ext of ['ts', 'js', 'mjs', 'tsx', 'jsx']) {
    const file = path.join(dir, `route.${ext}`)
    if (fs.existsSync(file)) return file
  }
  return null
}

/** A unified diff of two texts (whole-file context is not needed: 2 lines around each change). */
export function lineDiff(oldText, newText, oldName, newName) {
  const a = oldText.split('\n')
  const b = newText.split('\n')
  // LCS table (files here are a few hundred lines).
  const lcs = Array.from({ length: a.length + 1 }, () => new Uint32Array(b.length + 1))
  for (let i = a.length - 1; i >= 0; i--)
    for (let j = b.length - 1; j >= 0; j--)
      lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1])
  const ops = []
  let i = 0
  let j = 0
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) ops.push([' ', a[i++], j++])
    // Removals before additions, as diff prints them.
    else if (i < a.length && (j >= b.length || lcs[i + 1][j] >= lcs[i][j + 1])) ops.push(['-', a[i++]])
    else ops.push(['+', b[j++]])
  }
  const out = [`--- ${oldName}`, `+++ ${newName}`]
  const CONTEXT = 2
  const changed = ops.map((o) => o[0] !== ' ')
  let last = -Infinity
  ops.forEach((op, k) => {
    const near = changed.slice(Math.max(0, k - CONTEXT), k + CONTEXT + 1).some(Boolean)
    if (!near) return
    if (k > last + 1) out.push('@@')
    out.push(`${op[0]}${op[1]}`)
    last = k
  })
  return out.join('\n')
}

/** Parse a dotenv file as Next.js (`@next/env`, dotenv) does, without `$VAR` expansion. */
export function parseDotenv(text) {
  const out = {}
  const re =
    /^\s*(?:export\s+)?([\w.-]+)(?:\s*=\s*?|:\s+?)(\s*'(?:\\'|[^'])*'|\s*"(?:\\"|[^"])*"|\s*`(?:\\`|[^`])*`|[^#\r\n]+)?\s*(?:#.*)?$/gm
  for (const m of text.replace(/\r\n?/g, '\n').matchAll(re)) {
    let value = (m[2] || '').trim()
    const quote = value[0]
    value = value.replace(/^(['"`])([\s\S]*)\1$/m, '$2')
    if (quote === '"') value = value.replace(/\\n/g, '\n').replace(/\\r/g, '\r')
    out[m[1]] = value
  }
  return out
}

/**
 * The environment as `next dev` sees it (`mode` 'development', or 'production' as `next start`):
 * the process's variables win, then `.env.<mode>.local`, `.env.local`, `.env.<mode>`, `.env`.
 * `{ env, files }`: `files` are the ones read.
 */
export function loadEnv(dir, mode = 'development', processEnv = process.env) {
  const names = [`.env.${mode}.local`, '.env.local', `.env.${mode}`, '.env']
  const env = {}
  const files = []
  for (const name of names) {
    const file = path.join(dir, name)
    if (!fs.existsSync(file)) continue
    files.push(name)
    const parsed = parseDotenv(fs.readFileSync(file, 'utf8'))
    for (const [k, v] of Object.entries(parsed)) if (!(k in env)) env[k] = v
  }
  for (const [k, v] of Object.entries(processEnv)) if (v !== undefined) env[k] = v
  return { env, files }
}
