#!/usr/bin/env bash
# `npm run test:release`: what is published. The four portable Linux binaries (scripts/build-all.sh:
# cargo-zigbuild + zig, glibc floor 2.17, static musl) and the specs that check them and the npm
# packages built from them (vitest.release.config.mjs). .ci/run runs it after `npm test`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/phases.sh

phase 'npm ci (when node_modules is missing)'
bash scripts/ensure-deps.sh
phase 'cross builds (scripts/build-all.sh)'
bash scripts/build-all.sh
phase 'vitest: published binaries and packages'
logged vitest-release npx vitest run --config vitest.release.config.mjs
