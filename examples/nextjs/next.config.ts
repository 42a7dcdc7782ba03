import type { NextConfig } from 'next'

const config: NextConfig = {
  // A native addon: load it with Node's require at run time, never bundle it.
  serverExternalPackages: ['session-audio'],
  // This app lives inside the session-audio repository; without this Next picks the repository's
  // lock file as the workspace root. A standalone app does not need it.
  outputFileTracingRoot: __dirname,
}

export default config
