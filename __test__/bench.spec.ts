// The benchmark harness itself must keep working: run it in quick mode (small sizes, one round)
// and check that every variant succeeded in every scenario and the report has every section.
// The numbers are not asserted here: speed is measured by `npm run bench`, not by tests.
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

describe('npm run bench (quick mode)', () => {
  it('runs all three variants through every scenario and writes the report', async () => {
    const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'bench-')), 'BENCHMARKS.md')
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
      '## The two goals',
      '## 10 concurrent range streams',
      '## Upload',
      '### The same 8 MiB straight to Blob (client uploads)',
      '## Cold start',
      '## Targets',
    ]) {
      expect(md).toContain(section)
    }
    expect(md).toContain('All rounds succeeded: **yes**')
    for (const v of ['session-audio', 'pure-js', 'direct']) expect(md).toMatch(new RegExp(`^\\| ${v} \\|`, 'm'))
    expect(md).toMatch(/^\| client flow, straight to Blob \| \d+\.\d+ \|/m)
  }, 300_000)
})
