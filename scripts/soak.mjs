#!/usr/bin/env node
// `npm run soak [-- --seconds 60 --uploads 300 --concurrency 8 --seed N]`: the chaos soak
// (scripts/lib/soak.mjs). Prints its figures and exits non-zero when the invariant did not hold.
import { parseArgs } from 'node:util'
import { runSoak } from './lib/soak.mjs'

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    uploads: { type: 'string', default: '300' },
    concurrency: { type: 'string', default: '8' },
    seed: { type: 'string' },
  },
})
const number = (name) => {
  const n = Number(values[name])
  if (!Number.isInteger(n) || n <= 0) {
    console.error(`--${name} takes a whole number above 0`)
    process.exit(2)
  }
  return n
}
const { figures, violations } = await runSoak({
  seconds: number('seconds'),
  uploads: number('uploads'),
  concurrency: number('concurrency'),
  ...(values.seed !== undefined ? { seed: number('seed') } : {}),
  log: (line) => console.log(line),
})
console.log(JSON.stringify(figures, null, 2))
for (const v of violations) console.log(`VIOLATION: ${v}`)
console.log(
  `soak: ${figures.recordings} recordings, ${figures.faultsHit} faults hit, ${figures.attached} attached, ` +
    `${figures.keptRetryable} kept retryable, ${figures.lost} lost, ${figures.dangling} dangling, ` +
    `${figures.status500} answers 500: ${violations.length ? 'FAILED' : 'held'}`,
)
process.exit(violations.length ? 1 : 0)
