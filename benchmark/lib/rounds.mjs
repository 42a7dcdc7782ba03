// Rounds and results: a per-variant scenario runs each variant `rounds` times; every run returns
// `{ok, ...numbers}`. Failed runs are logged and listed in the report, and still counted in its
// medians.
import { VARIANTS, log } from './common.mjs'

export function rounds({ rounds, only }) {
  const results = {} // scenario → variant → [run]
  const failures = [] // one line per failed run
  /** Whether `--only` lets this scenario run. */
  const selected = (name) => !only || only.includes(name)
  async function perVariant(name, fn) {
    if (!selected(name)) return
    log(name)
    results[name] = {}
    for (const v of VARIANTS) {
      const runs = []
      for (let r = 0; r < rounds; r++) {
        const run = await fn(v)
        if (!run.ok) {
          failures.push(`${name} ${v} round ${r + 1}: ${JSON.stringify(run)}`)
          log(`${name} ${v} round ${r + 1} FAILED: ${JSON.stringify(run)}`)
        }
        runs.push(run)
      }
      results[name][v] = runs
    }
  }
  return { rounds, results, failures, selected, perVariant }
}
