// The benchmark harness itself must keep working: run it in quick mode (small sizes, one round)
// and check that every variant succeeded in every scenario and the report has every section.
// The numbers are not asserted here: speed is measured by `npm run bench`, not by tests.
// The recorder's Stop → transcribing benchmark (benchmark/recorder-stop.mjs, in Chromium) too:
// 2 minutes of audio with small parts, both variants reaching `transcribing`.
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { RECORDER_BEGIN, RECORDER_END } from '../benchmark/lib/sections.mjs'

describe('npm run bench (quick mode)', () => {
  it('runs all three variants through every scenario and writes the report', async () => {
    const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'bench-')), 'BENCHMARKS.md')
    // The recorder's section comes from its own run: rewriting the report keeps it as it was.
    const recorderSection = `${RECORDER_BEGIN}\n## Stop → transcribing (kept)\n${RECORDER_END}`
    fs.writeFileSync(out, `# old report\n\n${recorderSection}\n`)
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [path.resolve(__dirname, '../benchmark/run.mjs'), '--quick', '--out', out],
      {
        env: { ...process.env, SESSION_AUDIO_LOG: 'off' },
        timeout: 240_000,
      },
    )
    expect(JSON.parse(stdout.trim().split('\n').at(-1)!)).toEqual({ ok: true, out })
    const md = fs.readFileSync(out, 'utf8')
    for (const section of [
      '## Stream',
      '## Seek burst',
      '## The goals',
      '## 10 concurrent range streams',
      '## Upload',
      '### The same 8 MiB straight to Blob (client uploads)',
      '## Cold start',
      '## Targets',
    ]) {
      expect(md).toContain(section)
    }
    expect(md).toContain('All rounds succeeded: **yes**')
    // The burst's latency and throughput are goals beside its memory, each against the pure-JS route's.
    expect(md).toMatch(/^\| p99 first byte at 10 concurrent streams, session-audio ÷ pure-js \| \d+\.\d+× /m)
    expect(md).toMatch(/^\| throughput at 10 concurrent streams, session-audio ÷ pure-js \| \d+\.\d+× /m)
    // The relay that checks nothing is measured beside the route (a number, not a dash).
    expect(md).toMatch(
      /^\| \(beside it\) a bare relay that checks nothing, latency on: relay p50 − direct p50 \| -?\d+\.\d+ ms/m,
    )
    expect(md).toMatch(
      /^\| \(beside it\) what session-audio adds over that relay, latency on \/ zero latency \| -?\d+\.\d+ \/ -?\d+\.\d+ ms/m,
    )
    expect(md).toMatch(/^Machine load \(1-min average, \d+ vCPUs/m)
    for (const v of ['session-audio', 'pure-js', 'direct']) expect(md).toMatch(new RegExp(`^\\| ${v} \\|`, 'm'))
    expect(md).toMatch(/^\| client flow, straight to Blob \| \d+\.\d+ \|/m)
    expect(md).toContain(`${recorderSection}\n\n## Cold start`)
    expect(md).not.toContain('# old report')
  }, 300_000)

  it('recorder-stop (quick mode): the recorder and upload-at-Stop both reach transcribing in Chromium', async () => {
    const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'bench-recorder-')), 'BENCHMARKS.md')
    fs.writeFileSync(out, '# Benchmarks\n\n## Cold start\n')
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [path.resolve(__dirname, '../benchmark/recorder-stop.mjs'), '--quick', '--out', out],
      { env: { ...process.env, SESSION_AUDIO_LOG: 'off' }, timeout: 150_000 },
    )
    expect(JSON.parse(stdout.trim().split('\n').at(-1)!)).toEqual({ ok: true, out })
    const md = fs.readFileSync(out, 'utf8')
    // Placed before the cold-start section, between its markers, with a row per variant.
    expect(md.indexOf(RECORDER_BEGIN)).toBeGreaterThan(0)
    expect(md.indexOf(RECORDER_END)).toBeLessThan(md.indexOf('## Cold start'))
    expect(md).toContain('All rounds succeeded: **yes**')
    // One cell (2 min, 10 Mbit/s up), a row per variant: Stop → transcribing s, MiB sent after Stop.
    expect(md).toMatch(
      /^\| 2 min \(\d+\.\d+ MiB\) \| 10 \| `createSessionRecorder` \(parts uploaded while recording\) \| \*\*\d+\.\d+\*\* \| \d+\.\d+ \|/m,
    )
    expect(md).toMatch(
      /^\| 2 min \(\d+\.\d+ MiB\) \| 10 \| `uploadSessionAudio` of the whole recording after Stop \| \*\*\d+\.\d+\*\* \| \d+\.\d+ \|/m,
    )
  }, 180_000)
})
