import { defineConfig } from 'vitest/config'
import { releaseSpecs, shared } from './vitest.config.mjs'

// `npm run test:release` (scripts/test-release.sh), after scripts/build-all.sh: the specs `npm test` leaves out.
export default defineConfig({ test: { ...shared, include: releaseSpecs } })
