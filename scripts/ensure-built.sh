#!/usr/bin/env bash
# Make a fresh checkout runnable: install the npm dev dependencies if they are missing, then build
# the addon (release; cargo makes this a no-op when nothing changed).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x node_modules/.bin/napi ]; then
  # `npm ci` refuses this lock file: npm leaves other platforms' optional packages out of it
  # and then calls it out of sync. `npm install` honours the locked versions all the same.
  npm install --no-audit --no-fund
fi
npx napi build --platform --release --js binding.js --dts binding.d.ts "$@"
