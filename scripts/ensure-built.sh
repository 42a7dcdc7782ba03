#!/usr/bin/env bash
# Make a fresh checkout runnable: install the npm dev dependencies if they are missing (`npm ci`),
# then build the addon (release; cargo makes this a no-op when nothing changed). Extra arguments go
# to `napi build` (scripts/test.sh passes `--features test-hooks`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
npx napi build --platform --release --js binding.js --dts binding.d.ts "$@"
