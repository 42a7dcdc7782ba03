#!/usr/bin/env bash
# Build the addon, pack it exactly as it is published, install the tarballs into examples/nextjs
# (what users get from npm), type-check the app against our index.d.ts and `next build` it.
# Used by `npm run demo` and `npm run test:e2e`; arguments go to the addon build (scripts/ensure-built.sh),
# so scripts/test.sh packs the build its vitest run used instead of compiling a second one.
set -euo pipefail
cd "$(dirname "$0")/.."
export NEXT_TELEMETRY_DISABLED=1
bash scripts/ensure-built.sh "$@"
node scripts/pack.mjs examples/nextjs/.tarballs >/dev/null
cd examples/nextjs
# A changed tarball has the same file: spec; drop the old install so npm unpacks the new one.
rm -rf node_modules/session-audio node_modules/session-audio-*
npm install --no-audit --no-fund
# Both tarballs by path as well: the lockfile pins session-audio.tgz by its old integrity, and npm
# then serves the old contents from its cache without reading the new file.
platform=$(ls .tarballs | grep -v '^session-audio.tgz$')
npm install --no-save --no-audit --no-fund .tarballs/session-audio.tgz ".tarballs/$platform"
for f in index.js index.d.ts client.mjs client/finalise/webm.mjs binding.js; do
  cmp -s "../../$f" "node_modules/session-audio/$f" || { echo "examples/nextjs: stale session-audio install ($f)" >&2; exit 1; }
done
npx next build
npx tsc --noEmit
echo "examples/nextjs: built and type-checked against session-audio's index.d.ts"
