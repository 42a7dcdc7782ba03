// `npm run bench`: session-audio vs the pure-JS route vs talking to the storage directly, measured
// in one run on this machine, written to BENCHMARKS.md.
//   node benchmark/run.mjs [--quick] [--rounds N] [--out FILE] [--only a,b]
// Every variant runs in its own process (CPU and peak RSS are read from /proc); the services run
// in another; this process is the client. lib/ holds the parts every scenario uses (processes,
// HTTP client, statistics, the wired stack, the report); scenarios/ one file per measurement, run
// here in the report's order.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { benchFlags, log, sizes } from './lib/common.mjs'
import { allSucceeded, printMedians, renderReport } from './lib/report.mjs'
import { keptSection } from './lib/sections.mjs'
import { rounds as roundRunner } from './lib/rounds.mjs'
import { startServices } from './lib/services.mjs'
import stream from './scenarios/stream.mjs'
import seek from './scenarios/seek.mjs'
import concurrency from './scenarios/concurrency.mjs'
import upload from './scenarios/upload.mjs'
import clientUpload from './scenarios/client-upload.mjs'
import coldStart from './scenarios/cold-start.mjs'
import inprocScenario from './scenarios/inproc.mjs'

const { argv, flags } = benchFlags({
  // `--only stream,seek-zero`: run just those scenarios and print their medians (no report
  // written); for iterating on one number while profiling.
  only: { type: 'string' },
})
const quick = flags.quick
const rounds = Number(flags.rounds ?? (quick ? 1 : 3))
const only = flags.only?.split(',')
const out = path.resolve(flags.out)
const cfg = sizes(quick)

log(`mode: ${quick ? 'quick' : 'full'}, rounds: ${rounds}`)
// The machine is shared: its load goes in the report beside the numbers it bent.
const load = { before: os.loadavg()[0] }
const services = await startServices(cfg)
const runner = roundRunner({ rounds, only })
const bench = { cfg, services, ...runner }
await stream(bench)
await seek(bench)
await concurrency(bench)
await upload(bench)
const clientFlow = await clientUpload(bench)
await coldStart(bench)
const inproc = await inprocScenario(bench)
services.stop()
load.after = os.loadavg()[0]

const { results, failures } = runner
if (only) {
  printMedians({ results, inproc })
  for (const f of failures) console.log('failed:', f)
  console.log('machine load (1-min average)', { before: load.before.toFixed(2), after: load.after.toFixed(2) })
  process.exit(0)
}
const allOk = allSucceeded({ results, clientFlow, inproc })
// The recorder's section comes from its own run (benchmark/recorder-stop.mjs): kept as it was.
const kept = fs.existsSync(out) ? keptSection(fs.readFileSync(out, 'utf8')) : ''
fs.writeFileSync(out, renderReport({ quick, rounds, cfg, argv, results, failures, clientFlow, inproc, kept, load }))
log(`wrote ${out}`)
console.log(JSON.stringify({ ok: allOk, out }))
process.exit(allOk ? 0 : 1)
