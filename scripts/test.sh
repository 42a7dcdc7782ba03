#!/usr/bin/env bash
# `npm test`: the whole suite a change must pass, on a clean clone in ≤ 12 minutes on 2 cores (docs/development.md).
# Lints, the Rust unit and property tests, the vitest suites against the real addon and real loopback
# servers, then the example app in a real browser. The portable cross builds and the checks of the
# published binaries and packages are `npm run test:release` (scripts/test-release.sh); .ci/run runs both.
# Every run ends with the seconds each phase took and the runners' own counts (scripts/phases.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/phases.sh

phase 'npm ci (when node_modules is missing)'
bash scripts/ensure-deps.sh
# The cheap checks first, so a formatting slip fails in seconds, not after the builds.
phase 'cargo fmt --check'
cargo fmt --all -- --check
phase 'prettier --check'
npx prettier --check "**/*.{js,mjs,ts,tsx}" --log-level warn
# Everything Rust is compiled once, in the `test-build` profile (Cargo.toml: opt-level 1 with debug
# assertions and overflow checks) and for the host's target named explicitly, as napi always does,
# so clippy, `cargo test` and the addon share their dependencies' builds in target/<host>/test-build.
# The one addon serves the vitest suites and the browser tests. It carries the test-only panic hook
# (crates/core feature `test-hooks`, a request header that makes a handler panic); `npm run build`,
# build-all and the published binaries never do.
host=$(rustc -vV | sed -n 's/^host: //p')
build=(--profile test-build --target "$host")
phase 'addon build (test-build profile, --features test-hooks)'
bash scripts/ensure-built.sh "${build[@]}" --features test-hooks
phase 'cargo clippy -D warnings'
cargo clippy --workspace --all-targets "${build[@]}" --quiet -- -D warnings
phase 'cargo test (crates/core)'
logged cargo-test cargo test -p session-audio-core "${build[@]}"
# The example Next.js app, installed from the npm pack tarballs of the build above (the same build
# arguments, so the addon is not compiled again). Packed before any browser test starts: the pack
# copies the addon over itself, which a process that has it loaded must not see.
phase 'example app: pack, install, npx session-audio init, next build, tsc'
bash scripts/prepare-example.sh "${build[@]}" --features test-hooks
# The Chromium recorder spec is minutes of real-time fake-microphone recording (little CPU): it runs
# beside vitest and the other browser specs rather than after them. Every server a spec starts takes
# a free port, so the runs share nothing.
logged e2e-recorder npx vitest run --config e2e/vitest.config.mts e2e/recorder.e2e.ts &
recorder=$!
phase 'vitest (__test__/, without the release specs; the recorder browser spec beside it)'
logged vitest npx vitest run
# Then the example app in Debian's Chromium, and the recorder and the demo in Firefox ESR and
# WebKitGTK (e2e/lib/engines.ts).
phase 'browser tests (examples/nextjs in Chromium; the recorder and the demo in Firefox ESR and WebKitGTK)'
rest=0
logged e2e npx vitest run --config e2e/vitest.config.mts --exclude e2e/recorder.e2e.ts || rest=$?
phase 'waiting for the recorder browser spec (started before vitest)'
recorder_rc=0
wait "$recorder" || recorder_rc=$?
[ "$rest" -eq 0 ] && [ "$recorder_rc" -eq 0 ]
