#!/usr/bin/env bash
# Make a fresh checkout runnable: install the npm dev dependencies if they are missing (`npm ci`),
# then build the addon (cargo makes this a no-op when nothing changed). Extra arguments go to
# `napi build`; the build is `--release` unless they name a `--profile` (scripts/test.sh does).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
release=--release
for arg in "$@"; do [ "$arg" = --profile ] && release=''; done
npx napi build --platform $release --js binding.js --dts binding.d.ts "$@"
