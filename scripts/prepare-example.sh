#!/usr/bin/env bash
# Build the addon, pack it exactly as it is published, install the tarballs into examples/nextjs
# (what users get from npm), type-check the app against our index.d.ts and `next build` it.
# Used by `npm run demo` and `npm run test:e2e`.
set -euo pipefail
cd "$(dirname "$0")/.."
export NEXT_TELEMETRY_DISABLED=1
bash scripts/ensure-built.sh
node scripts/pack.mjs examples/nextjs/.tarballs >/dev/null
cd examples/nextjs
# A changed tarball has the same file: spec; drop the old install so npm unpacks the new one.
rm -rf node_modules/session-audio node_modules/session-audio-*
npm install --no-audit --no-fund
platform=$(ls .tarballs | grep -v '^session-audio.tgz$')
npm install --no-save --no-audit --no-fund ".tarballs/$platform"
npx next build
npx tsc --noEmit
echo "examples/nextjs: built and type-checked against session-audio's index.d.ts"
