// sweepOrphanAudio and `npx session-audio sweep` against the local stack: Convex (the template's
// attachedAudio query, guarded by SESSION_AUDIO_SWEEP_SECRET) and the Blob store's list and delete.
import { execFile } from 'node:child_process'
import path from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { sineWav } from '../stack/wav.mjs'
import { sweepOrphanAudio } from '../index.js'
import { startStack, type Stack, storeDated } from './helpers'

const run = promisify(execFile)
const SECRET = 'sweep-secret-for-tests'
const DAY = 86_400_000
let s: Stack
let attached: string
let orphanOld: string
let orphanYoung: string
let outside: string

beforeAll(async () => {
  s = await startStack()
  // The Convex deployment's environment (the template query runs in this process here).
  process.env.SESSION_AUDIO_SWEEP_SECRET = SECRET
  const token = await s.clerk.sessionToken({ sub: 'user_alice' })
  const id = await s.session('user_alice', null, { status: 'recording' })
  const res = await s.post(id, sineWav(2), {
    token,
    headers: { 'x-duration-ms': '2000', 'x-content-type': 'audio/wav' },
  })
  expect(res.status).toBe(201)
  attached = (await res.json()).pathname
  s.blob.meta.get(attached).uploadedAt = new Date(Date.now() - 3 * DAY).toISOString()
  orphanOld = await storeDated(s, 'listening-sessions/gone/old.wav', 2 * DAY)
  orphanYoung = await storeDated(s, 'listening-sessions/gone/young.wav', 60_000)
  outside = await storeDated(s, 'elsewhere/old.wav', 9 * DAY)
})
afterAll(async () => {
  delete process.env.SESSION_AUDIO_SWEEP_SECRET
  await s.close()
})

const options = (extra = {}) => ({ ...s.options(), sweepSecret: SECRET, olderThanMs: DAY, ...extra })

describe('sweepOrphanAudio', () => {
  it('a dry run names the unattached blob older than the threshold and deletes nothing', async () => {
    const before = s.blob.list()
    const report = await sweepOrphanAudio(options({ dryRun: true }))
    expect(report).toEqual({ listed: 3, attached: 1, keptYoung: 1, orphans: [orphanOld], deleted: 0, dryRun: true })
    expect(s.blob.list()).toEqual(before)
  })

  it('a wrong secret is refused by Convex, and nothing is deleted', async () => {
    const before = s.blob.list()
    await expect(sweepOrphanAudio(options({ sweepSecret: 'guess' }))).rejects.toThrow(/convex_error.*forbidden/)
    expect(s.blob.list()).toEqual(before)
  })

  it('a missing setting or a bad threshold is named, and nothing runs', async () => {
    const cli = path.resolve('bin/session-audio.mjs')
    const { SESSION_AUDIO_SWEEP_SECRET: _, ...env } = process.env
    const before = s.blob.list()
    const missing = await run('node', [cli, 'sweep', '--older-than', '1h'], {
      env: { ...env, NEXT_PUBLIC_CONVEX_URL: s.convex.url, BLOB_READ_WRITE_TOKEN: s.blob.token },
    }).catch((e) => e)
    expect([missing.code, missing.stderr]).toEqual([
      1,
      expect.stringContaining('SESSION_AUDIO_SWEEP_SECRET is not set'),
    ])
    await expect(sweepOrphanAudio({ ...options(), olderThanMs: -1 })).rejects.toThrow(/olderThanMs/)
    expect(s.blob.list()).toEqual(before)
  })

  it('a threshold under the floor (client-token lifetime + upload timeout + 5 min) is refused: it could race a completion', async () => {
    const before = s.blob.list()
    // Defaults: 60 + 15 + 5 = 80 min.
    await expect(sweepOrphanAudio(options({ olderThanMs: 60 * 60_000 }))).rejects.toThrow(
      /invalid_threshold: .*at least 80 min/,
    )
    // The floor follows the settings the handlers read.
    const short = { clientTokenTtlMs: 10 * 60_000, uploadTimeoutMs: 5 * 60_000 }
    await expect(sweepOrphanAudio(options({ ...short, olderThanMs: 19 * 60_000, dryRun: true }))).rejects.toThrow(
      /at least 20 min/,
    )
    const ok = await sweepOrphanAudio(options({ ...short, olderThanMs: 20 * 60_000, dryRun: true }))
    expect(ok.dryRun).toBe(true)
    expect(s.blob.list()).toEqual(before)
  })

  it('`npx session-audio sweep` prints what it did: the old orphan goes, everything else stays', async () => {
    const cli = path.resolve('bin/session-audio.mjs')
    const env = {
      ...process.env,
      NEXT_PUBLIC_CONVEX_URL: s.convex.url,
      BLOB_READ_WRITE_TOKEN: s.blob.token,
      VERCEL_BLOB_API_URL: s.blob.apiUrl,
      SESSION_AUDIO_SWEEP_SECRET: SECRET,
    }
    const dry = await run('node', [cli, 'sweep', '--older-than', '24h', '--dry-run'], { env })
    expect(dry.stdout).toContain(`would delete ${orphanOld}\n`)
    expect(dry.stdout).toMatch(/3 listed, 1 attached, .* 1 orphaned: dry run, nothing deleted/)
    expect(s.blob.list()).toContain(orphanOld)
    const real = await run('node', [cli, 'sweep', '--older-than=24h'], { env })
    expect(real.stdout).toContain(`deleted ${orphanOld}\n`)
    expect(s.blob.list()).toEqual([attached, orphanYoung, outside].sort())
    const usage = await run('node', [cli, 'sweep']).catch((e) => e)
    expect([usage.code, usage.stderr]).toEqual([2, expect.stringContaining('--older-than is required')])
  })
})
