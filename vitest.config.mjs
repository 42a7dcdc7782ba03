import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['__test__/**/*.spec.ts'],
    // Native addons run fine in forks (docs/napi-streaming.md); one fork per file keeps each
    // spec's loopback servers and memory measurements to itself.
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 120_000,
    fileParallelism: false,
    // The per-request JSON log lines would drown the test output; observability.spec.ts turns
    // them on in a child process where it asserts them.
    env: { SESSION_AUDIO_LOG: 'off' },
  },
})
