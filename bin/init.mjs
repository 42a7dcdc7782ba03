// npx session-audio init [--route <path>] [--blob-auth oidc|read-write] [--force] [--dry-run]
// Sets session-audio up in the Next.js App Router project in the current folder: the route file,
// `serverExternalPackages` in next.config, the Convex template's functions in convex/ (schema
// fields printed when the app has its own schema), and the variables each side needs, with a
// fresh SESSION_AUDIO_CONVEX_SECRET. Never asks a question (flags and defaults only), never
// overwrites a file that differs (it shows the diff; --force replaces it), and a second run changes
// nothing. Exit 0 when everything it writes is in place; 1 when a differing file was kept or the
// folder is not a Next.js app; 2 on a usage error.
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { addServerExternalPackage, PACKAGE } from './next-config.mjs'
import {
  findProject,
  lineDiff,
  loadEnv,
  routeFile,
  ROUTE_SOURCE,
  TEMPLATE_DIR,
  TEMPLATE_FUNCTIONS,
  eachFlag,
  UsageError,
} from './project.mjs'

export const INIT_USAGE =
  'usage: session-audio init [--route <path>] [--blob-auth oidc|read-write] [--force] [--dry-run]'

function parseArgs(args) {
  const opts = { route: null, blobAuth: 'oidc', force: false, dryRun: false }
  eachFlag(args, (flag, value, arg) => {
    if (flag === '--dry-run') opts.dryRun = true
    else if (flag === '--force') opts.force = true
    else if (flag === '--route') opts.route = value()
    else if (flag === '--blob-auth') {
      opts.blobAuth = value()
      if (opts.blobAuth !== 'oidc' && opts.blobAuth !== 'read-write') {
        throw new UsageError(`--blob-auth is oidc or read-write, not ${JSON.stringify(opts.blobAuth)}`)
      }
    } else throw new UsageError(`unknown argument ${JSON.stringify(arg)}`)
  })
  return opts
}

/** The parts of the template schema an app with its own schema adds: the validator and the two tables. */
function schemaSnippet(template) {
  const status = template.slice(template.indexOf('export const sessionStatus'), template.indexOf('export default'))
  const body = template.slice(template.indexOf('defineSchema({') + 'defineSchema({'.length, template.lastIndexOf('})'))
  return `${status.trimEnd()}\n\n// inside defineSchema({ … }):\n${body.replace(/^\n/, '').trimEnd()}`
}

/** Whether an app's own schema already has what the template functions read. */
function schemaHasFields(text) {
  return ['sessionStatus', 'listeningSessions', 'entitlements', 'by_audio_pathname', 'by_audio_url', 'by_user'].every(
    (word) => text.includes(word),
  )
}

export async function init(args, { cwd = process.cwd(), out = process.stdout, err = process.stderr } = {}) {
  let opts
  try {
    opts = parseArgs(args)
  } catch (e) {
    if (!(e instanceof UsageError)) throw e
    err.write(`session-audio init: ${e.message}\n${INIT_USAGE}\n`)
    return 2
  }
  const project = findProject(cwd)
  if (project.why) {
    err.write(`session-audio init: ${project.why}\n`)
    return 1
  }
  const rel = (file) => path.relative(project.root, file) || '.'
  const lines = []
  const say = (s = '') => lines.push(s)
  const todo = []
  const diffs = []
  let changed = 0
  let conflicts = 0
  const verb = opts.dryRun ? 'would ' : ''
  /** `  create     file`: the action in an 11-column field (longer ones get one space). */
  const tag = (action) => `  ${action.length >= 11 ? `${action} ` : action.padEnd(11)}`

  /** Write `content` to `file` unless a different file is there (then diff; `--force` replaces). */
  const place = (file, content, what) => {
    const existing = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : null
    if (existing === content) return say(`${tag('unchanged')}${rel(file)} (${what})`)
    if (existing !== null && !opts.force) {
      conflicts++
      say(`${tag('kept')}${rel(file)}: it differs from session-audio's ${what} (diff below; --force replaces it)`)
      diffs.push(lineDiff(existing, content, `${rel(file)} (yours)`, `${rel(file)} (session-audio's)`))
      return
    }
    changed++
    say(`${tag(`${verb}${existing === null ? 'create' : 'replace'}`)}${rel(file)} (${what})`)
    if (!opts.dryRun) {
      fs.mkdirSync(path.dirname(file), { recursive: true })
      fs.writeFileSync(file, content)
    }
  }

  say(`session-audio init: ${project.root}${opts.dryRun ? ' (dry run: nothing is written)' : ''}`)

  // 1. The route file.
  place(routeFile(project, opts.route), ROUTE_SOURCE, 'route file')

  // 2. next.config: serverExternalPackages.
  const property = `serverExternalPackages: ['${PACKAGE}'],`
  if (!project.nextConfig) {
    const file = path.join(project.root, project.typescript ? 'next.config.ts' : 'next.config.mjs')
    const content = project.typescript
      ? `import type { NextConfig } from 'next'\n\nconst nextConfig: NextConfig = {\n  ${property}\n}\n\nexport default nextConfig\n`
      : `/** @type {import('next').NextConfig} */\nconst nextConfig = {\n  ${property}\n}\n\nexport default nextConfig\n`
    place(file, content, 'Next.js config')
  } else {
    const src = fs.readFileSync(project.nextConfig, 'utf8')
    const edit = addServerExternalPackage(src)
    if (edit.status === 'present')
      say(`${tag('unchanged')}${rel(project.nextConfig)} (already lists '${PACKAGE}' in serverExternalPackages)`)
    else if (edit.status === 'edited') {
      changed++
      say(`${tag(`${verb}edit`)}${rel(project.nextConfig)} (adds '${PACKAGE}' to serverExternalPackages)`)
      if (opts.dryRun)
        diffs.push(lineDiff(src, edit.output, rel(project.nextConfig), `${rel(project.nextConfig)} (edited)`))
      else fs.writeFileSync(project.nextConfig, edit.output)
    } else {
      say(`${tag('not edited')}${rel(project.nextConfig)}: ${edit.why}`)
      todo.push(
        `In ${rel(project.nextConfig)}, add to the config object (Next.js must not bundle the native addon):\n      ${property}\n    (or '${PACKAGE}' to the serverExternalPackages array it builds)`,
      )
    }
  }

  // 3. The Convex template's functions, and the schema.
  for (const name of TEMPLATE_FUNCTIONS) {
    place(path.join(project.convexDir, name), fs.readFileSync(path.join(TEMPLATE_DIR, name), 'utf8'), 'Convex template')
  }
  const schemaFile = path.join(project.convexDir, 'schema.ts')
  const templateSchema = fs.readFileSync(path.join(TEMPLATE_DIR, 'schema.ts'), 'utf8')
  const appSchema = fs.existsSync(schemaFile) ? fs.readFileSync(schemaFile, 'utf8') : null
  if (appSchema === null || appSchema === templateSchema) place(schemaFile, templateSchema, 'Convex schema')
  else if (schemaHasFields(appSchema))
    say(`${tag('unchanged')}${rel(schemaFile)} (your schema; it has session-audio's tables)`)
  else {
    say(`${tag('not edited')}${rel(schemaFile)}: it is your own schema`)
    todo.push(
      `Add session-audio's tables to ${rel(schemaFile)} (listeningSessions.ts imports \`sessionStatus\` from it):\n${schemaSnippet(templateSchema).replace(/^(?=.)/gm, '      ')}`,
    )
  }

  // The template's functions import `convex`, and `next build` type-checks convex/ with the rest of
  // the app: in an app without the package the build fails until it is installed.
  if (!project.convexInstalled) todo.push(`Install Convex, which the template's functions import: npm install convex`)

  // 4. The variables, on each side.
  const { env } = loadEnv(project.root)
  const haveSecret = (env.SESSION_AUDIO_CONVEX_SECRET ?? '').length >= 32
  const secret = haveSecret ? null : crypto.randomBytes(32).toString('hex')
  const storeFromToken = (env.BLOB_READ_WRITE_TOKEN ?? '').split('_')[3]
  const storeId = env.BLOB_STORE_ID || (storeFromToken ? `store_${storeFromToken}` : 'store_XXXXXXXX')
  const template = env.SESSION_AUDIO_CONVEX_TEMPLATE || 'convex'
  const secretLine = haveSecret
    ? `# SESSION_AUDIO_CONVEX_SECRET is already set in this folder's environment (not shown): use that value.`
    : `export SESSION_AUDIO_CONVEX_SECRET=${secret}   # generated now; also put it in .env.local for next dev`
  const blobLines =
    opts.blobAuth === 'oidc'
      ? [
          `# Blob over OIDC: connect a Blob store to the project (Vercel dashboard, Storage). That sets`,
          `# BLOB_STORE_ID and BLOB_WEBHOOK_PUBLIC_KEY; \`vercel env pull .env.local\` copies them here.`,
        ]
      : [
          `# Blob with a read-write token (from the store's settings):`,
          `vercel env add BLOB_READ_WRITE_TOKEN production`,
        ]
  todo.push(
    [
      `Set the variables (each one missing is a 503 at the first request). Add --prod to the convex`,
      `    commands for the production deployment; add preview/development to vercel env add as needed:`,
      `      ${secretLine}`,
      `      # Vercel (where the route runs):`,
      `      vercel env add CLERK_SECRET_KEY production            # sk_live_… (Clerk dashboard, API keys)`,
      `      vercel env add NEXT_PUBLIC_CONVEX_URL production      # https://<deployment>.convex.cloud`,
      `      printf %s "$SESSION_AUDIO_CONVEX_SECRET" | vercel env add SESSION_AUDIO_CONVEX_SECRET production`,
      ...blobLines.map((l) => `      ${l}`),
      `      # Convex (the same secret, and the store the audio may live on):`,
      `      npx convex env set SESSION_AUDIO_CONVEX_SECRET "$SESSION_AUDIO_CONVEX_SECRET"`,
      `      npx convex env set SESSION_AUDIO_BLOB_STORE_ID ${storeId}`,
      `      npx convex env set CLERK_JWT_ISSUER_DOMAIN https://<your Clerk Frontend API host>`,
      `      # For \`session-audio sweep\` (optional): one more shared secret, on Convex and where the sweep runs:`,
      `      #   npx convex env set SESSION_AUDIO_SWEEP_SECRET "$(openssl rand -hex 32)"`,
    ].join('\n'),
  )
  todo.push(
    `In the Clerk dashboard (JWT templates), create a template named \`${template}\` (Convex preset, audience \`convex\`).`,
  )
  todo.push(
    `Deploy the functions (\`npx convex deploy\`, or \`npx convex dev\`; both write ${rel(path.join(project.convexDir, '_generated'))}/, which\n    they import: \`next build\` fails until it is there), then check it all: npx session-audio doctor`,
  )

  say()
  if (changed === 0 && conflicts === 0) say('Nothing changed: every file init writes is already in place.')
  else if (opts.dryRun) say(`Dry run: ${changed} file(s) would change; nothing was written.`)
  for (const d of diffs) say(`\n${d}`)
  if (conflicts)
    say(
      `\n${conflicts} file(s) differ from session-audio's and were kept: review the diff, then rerun with --force to replace them.`,
    )
  say('\nTo do by hand:')
  todo.forEach((t, k) => say(`  ${k + 1}. ${t}`))
  out.write(`${lines.join('\n')}\n`)
  return conflicts ? 1 : 0
}
