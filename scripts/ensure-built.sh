#!/usr/bin/env bash
# Make a fresh checkout runnable: install the npm dev dependencies if they are missing, then build
# the addon (release; cargo makes this a no-op when nothing changed).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x node_modules/.bin/napi ]; then
  if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
fi
npx napi build --platform --release --js binding.js --dts binding.d.ts
