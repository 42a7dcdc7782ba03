// Run the example Next.js app (`next start`, after scripts/prepare-example.sh built it) against a
// local stack's environment. Collects the server's stderr lines: session-audio logs one JSON line
// per request there, which the browser tests read.
import { spawn } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const appDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'examples', 'nextjs')

export async function startExampleApp({ env, port = 3000, host = 'localhost', inherit = false }) {
  const child = spawn(
    process.execPath,
    [path.join(appDir, 'node_modules', 'next', 'dist', 'bin', 'next'), 'start', '-p', String(port), '-H', host],
    {
      cwd: appDir,
      env: { ...process.env, NEXT_TELEMETRY_DISABLED: '1', SESSION_AUDIO_LOG: 'info', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  const lines = []
  const collect = (stream, echo) => {
    let buf = ''
    stream.on('data', (d) => {
      if (inherit) echo.write(d)
      buf += d
      let nl
      while ((nl = buf.indexOf('\n')) >= 0) {
        lines.push(buf.slice(0, nl))
        buf = buf.slice(nl + 1)
      }
    })
  }
  collect(child.stdout, process.stdout)
  collect(child.stderr, process.stderr)
  const url = `http://${host}:${port}`
  const deadline = Date.now() + 60_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`next start exited with ${child.exitCode}:\n${lines.join('\n')}`)
    try {
      await fetch(url, { redirect: 'manual' })
      break
    } catch {
      if (Date.now() > deadline) throw new Error(`next start did not answer on ${url}`)
      await new Promise((r) => setTimeout(r, 250))
    }
  }
  return {
    url,
    lines,
    /** session-audio's per-request log records (JSON lines with a status). */
    records: () =>
      lines
        .filter((l) => l.startsWith('{'))
        .map((l) => {
          try {
            return JSON.parse(l)
          } catch {
            return null
          }
        })
        .filter((r) => r && (r.status ?? r.fields?.status) !== undefined),
    async close() {
      if (child.exitCode !== null) return
      child.kill('SIGTERM')
      await new Promise((r) => child.once('exit', r))
    },
  }
}
