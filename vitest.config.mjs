import { configDefaults, defineConfig } from 'vitest/config'

// Specs that check what is published: the portable binaries `scripts/build-all.sh` cross-builds and
// the npm packages made from them, and `init` in a fresh Next.js app built from those packages.
// `npm run test:release` runs them (vitest.release.config.mjs); `npm test` leaves them out, so its
// run needs no cross build (nor a Next.js install and build of its own).
export const releaseSpecs = ['__test__/binary.spec.ts', '__test__/package.spec.ts', '__test__/init-fresh.spec.ts']

export const shared = {
  // Native addons run fine in forks (docs/napi-streaming.md); one fork per file keeps each
  // spec's loopback servers and memory measurements to itself.
  pool: 'forks',
  testTimeout: 60_000,
  hookTimeout: 120_000,
  fileParallelism: false,
  // The per-request JSON log lines would drown the test output; observability.spec.ts turns
  // them on in a child process where it asserts them.
  env: { SESSION_AUDIO_LOG: 'off' },
}

export default defineConfig({
  test: {
    ...shared,
    include: ['__test__/**/*.spec.ts'],
    exclude: [...configDefaults.exclude, ...releaseSpecs],
  },
})
