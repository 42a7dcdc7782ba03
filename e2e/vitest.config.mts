import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    // RECORD_WEBKIT_FIXTURE set: the fixture-recording tool alone (`npm run record:webkit-fixture`).
    include: process.env.RECORD_WEBKIT_FIXTURE ? ['e2e/record-webkit-fixture.tool.ts'] : ['e2e/**/*.e2e.ts'],
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 180_000,
    fileParallelism: false,
  },
})
