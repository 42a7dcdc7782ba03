// What every part of the benchmark shares: sizes, the variants, the service latency, the log.
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

/** benchmark/ (where the child-process scripts live) and the repository root. */
export const benchDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
export const repo = path.resolve(benchDir, '..')

export const MiB = 1024 * 1024

/** What each scenario moves: small in quick mode (the test), realistic otherwise. */
export const sizes = (quick) =>
  quick
    ? { bigBytes: 8 * MiB, medBytes: MiB, seeks: 20, streams: 10, rangeBytes: 256 * 1024, uploadBytes: 8 * MiB }
    : { bigBytes: 256 * MiB, medBytes: 16 * MiB, seeks: 500, streams: 200, rangeBytes: 4 * MiB, uploadBytes: 256 * MiB }

/** Added service latency (ms) for the `seek-latency` scenario. */
export const LATENCY = { clerk: 30, convex: 25, blob: 15 }

/** Every per-variant scenario runs these, in this order (also the report's row order). */
export const VARIANTS = ['session-audio', 'pure-js', 'direct']

export const log = (...a) => console.error('[bench]', ...a)

/**
 * The command line of a benchmark script: `--quick`, `--rounds`, `--out` (default BENCHMARKS.md)
 * and the script's own `options`. Returns the raw `argv` (the report quotes it) and the `flags`.
 */
export function benchFlags(options = {}) {
  const argv = process.argv.slice(2)
  const { values: flags } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      rounds: { type: 'string' },
      ...options,
      out: { type: 'string', default: path.join(repo, 'BENCHMARKS.md') },
    },
  })
  return { argv, flags }
}
