// `npm run example` (scripts/end-to-end.mjs) must keep working: it is the scripted tour (docs/development.md) of
// the whole path on the local stack, and it silently broke once when uploads started to need the
// attach secret. Run it and hold it to its own checks (it exits non-zero when one is off).
import { execFile } from 'node:child_process'
import path from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

describe('npm run example', () => {
  it('uploads, streams, seeks and refuses as the tour expects', async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [path.resolve(__dirname, '../scripts/end-to-end.mjs')],
      { env: { ...process.env, SESSION_AUDIO_LOG: 'off' }, timeout: 60_000 },
    )
    expect(stdout).toMatch(/^POST 10 s WAV \(320 KB\)\s+201 /m)
    expect(stdout).toMatch(/^GET Range bytes=160000- \(seek\)\s+206 /m)
    expect(stdout).not.toContain('✗')
    expect(stdout.trim().split('\n').at(-1)).toBe('All as expected.')
  })
})
