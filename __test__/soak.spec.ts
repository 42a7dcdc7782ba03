// A short run of the chaos soak (`npm run soak` runs it for longer: scripts/lib/soak.mjs): real
// recordings through every upload flow while Clerk, Convex and Blob fail at random, then the
// invariant for each one: attached and playable, or still stored and retryable. Zero lost, zero
// dangling URLs, no 500.
import { describe, expect, it } from 'vitest'
import { runSoak } from '../scripts/lib/soak.mjs'

describe('chaos soak (short)', () => {
  it('no recording lost, no URL dangling, no 500, while faults hit every flow', async () => {
    // Bounded by time, not count, with faults armed often: a fast machine must still meet them.
    const { figures, violations } = await runSoak({ seconds: 8, uploads: 1000, concurrency: 6, faultEveryMs: 50 })
    console.log(`soak: ${JSON.stringify(figures)}`)
    expect(violations).toEqual([])
    expect(figures.lost + figures.dangling + figures.status500).toBe(0)
    // It did what it claims: every flow ran, faults were taken, and they cost refusals.
    expect(Object.values(figures.byFlow).every((n) => n > 0)).toBe(true)
    expect(figures.faultsHit).toBeGreaterThanOrEqual(3)
    expect(figures.refusedRetried).toBeGreaterThan(0)
    expect(figures.attached + figures.keptRetryable).toBe(figures.recordings)
  }, 180_000)
})
