// The route in a process of its own (stack/route-process.mjs), started and watched from a spec.
import { spawn, type ChildProcess } from 'node:child_process'
import path from 'node:path'
import type { AudioOptions, RequestRecord } from '../index.js'

export type RouteProcess = {
  url: string
  child: ChildProcess
  /** `/<name>/api/listening-sessions/<id>/audio` */
  route: (name: string, sessionId: string) => string
  stats: () => Promise<{ rss: number; records: RequestRecord[] }>
  alive: () => boolean
  stop: () => void
}

/**
 * Start `routes` (name → options; JSON only, no callbacks) in a child process. `stderr`: 'read'
 * (collected into `lines`) or 'unread' (a pipe nobody ever reads, filled before the first request).
 */
export async function startRouteProcess(
  routes: Record<string, AudioOptions>,
  { stderr, env = {} }: { stderr: 'read' | 'unread'; env?: Record<string, string> },
): Promise<RouteProcess & { lines: string[] }> {
  const script = path.resolve(__dirname, '../stack/route-process.mjs')
  const args = stderr === 'unread' ? [script, '--fill-stderr'] : [script]
  const child = spawn(process.execPath, args, {
    stdio: ['pipe', 'pipe', 'pipe'],
    // Logging on (vitest's environment turns it off): the log is what these specs watch.
    env: { ...process.env, SESSION_AUDIO_LOG: 'info', ...env, SESSION_AUDIO_ROUTES: JSON.stringify(routes) },
  })
  const lines: string[] = []
  if (stderr === 'read') {
    let rest = ''
    child.stderr!.on('data', (d) => {
      const parts = (rest + String(d)).split('\n')
      rest = parts.pop()!
      lines.push(...parts)
    })
  } // else: never read, never resumed: the pipe stays full
  const first = await new Promise<string>((resolve, reject) => {
    child.stdout!.once('data', (d) => resolve(String(d)))
    child.once('exit', (code) => reject(new Error(`route process exited (${code})`)))
  })
  const { url } = JSON.parse(first) as { url: string }
  return {
    url,
    child,
    lines,
    route: (name, sessionId) => `${url}/${name}/api/listening-sessions/${sessionId}/audio`,
    stats: async () => (await fetch(`${url}/__stats`)).json(),
    alive: () => child.exitCode === null && child.signalCode === null,
    stop: () => child.kill(),
  }
}
