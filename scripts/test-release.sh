#!/usr/bin/env bash
# `npm run test:release`: what is published. The portable binaries (scripts/build-all.sh:
# cargo-zigbuild + zig; Linux with glibc floor 2.17 and static musl, macOS arm64 and x64 at their
# floors) and the specs that check them and the npm packages built from them
# (vitest.release.config.mjs); scripts/macho-check reads the macOS ones. .ci/run runs it after `npm test`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/phases.sh

phase 'npm ci (when node_modules is missing)'
bash scripts/ensure-deps.sh
phase 'cross builds (scripts/build-all.sh)'
bash scripts/build-all.sh
phase 'macOS binary checker (scripts/macho-check)'
cargo build --quiet --locked --manifest-path scripts/macho-check/Cargo.toml
phase 'vitest: published binaries and packages'
logged vitest-release npx vitest run --config vitest.release.config.mjs
