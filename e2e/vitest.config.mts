import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    // E2E_TOOL names one of the e2e/*.tool.ts programs (fixture recording, a WebKit seek probe) to
    // run alone; `npm test` runs the *.e2e.ts specs only.
    include: process.env.E2E_TOOL ? [process.env.E2E_TOOL] : ['e2e/**/*.e2e.ts'],
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 180_000,
    fileParallelism: false,
  },
})
