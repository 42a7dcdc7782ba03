#!/usr/bin/env bash
# Build the addon, pack it exactly as it is published, install the tarballs into examples/nextjs
# (what users get from npm), run `npx session-audio init` on it, type-check the app against our
# index.d.ts and `next build` it.
# Used by `npm run demo` and `npm run test:e2e`; arguments go to the addon build (scripts/ensure-built.sh).
# `--built` instead: the addon is built already and only packed (scripts/test.sh, whose browser specs
# have it loaded by then: even a build with nothing to compile copies the addon over itself, which
# a process that has it loaded must not see).
set -euo pipefail
cd "$(dirname "$0")/.."
export NEXT_TELEMETRY_DISABLED=1
if [ "${1:-}" = --built ]; then
  [ $# -eq 1 ] || { echo "prepare-example.sh: --built takes no build arguments" >&2; exit 2; }
else
  bash scripts/ensure-built.sh "$@"
fi
node scripts/pack.mjs examples/nextjs/.tarballs >/dev/null
cd examples/nextjs
# A changed tarball has the same file: spec; drop the old install so npm unpacks the new one.
rm -rf node_modules/session-audio node_modules/session-audio-*
npm install --no-audit --no-fund
# Both tarballs by path as well: the lockfile pins session-audio.tgz by its old integrity, and npm
# then serves the old contents from its cache without reading the new file.
platform=$(ls .tarballs | grep -v '^session-audio.tgz$')
npm install --no-save --no-audit --no-fund .tarballs/session-audio.tgz ".tarballs/$platform"
for f in index.js index.d.ts client.mjs client/finalise/webm.mjs binding.js bin/init.mjs bin/next-config.mjs bin/doctor.mjs; do
  cmp -s "../../$f" "node_modules/session-audio/$f" || { echo "examples/nextjs: stale session-audio install ($f)" >&2; exit 1; }
done
# The app is committed without what `npx session-audio init` writes: init writes it here as in a
# user's app, with the installed package's command, every time from scratch: the route file, and
# next.config.ts from the committed next.config.before-init.ts plus the serverExternalPackages
# entry (convex.json points at ../convex, the template itself, so its functions are in place). Its
# output names a fresh secret this app does not use: shown only if init fails.
# e2e/init.e2e.ts checks that a second run changes nothing and the rest of the config is untouched.
rm -f 'app/api/listening-sessions/[sessionId]/audio/route.ts' next.config.ts
cp next.config.before-init.ts next.config.ts
init_out=$(node node_modules/session-audio/bin/session-audio.mjs init </dev/null 2>&1) || {
  echo "$init_out" >&2
  echo "examples/nextjs: npx session-audio init failed" >&2
  exit 1
}
npx next build
npx tsc --noEmit
echo "examples/nextjs: built and type-checked against session-audio's index.d.ts"
