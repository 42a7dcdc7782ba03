// This app's next.config as it is before `npx session-audio init`: scripts/prepare-example.sh copies
// it to next.config.ts and runs init, which adds `serverExternalPackages: ['session-audio']` (a
// native addon must be loaded with Node's require at run time, never bundled) and leaves every
// other byte as it is here (e2e/init.e2e.ts checks both).
import type { NextConfig } from 'next'

const config: NextConfig = {
  // This app lives inside the session-audio repository; without this Next picks the repository's
  // lock file as the workspace root. A standalone app does not need it.
  outputFileTracingRoot: __dirname,
}

export default config
