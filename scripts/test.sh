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
# The real-time browser specs run beside everything after this point, one after another: the
# Chromium recorder spec (minutes of fake-microphone recording, little CPU) beside the example app's
# build, clippy and `cargo test`, then the recorder and the demo in Firefox ESR and WebKitGTK, which
# start once those compiles are done (Firefox's duration check has failed under a load average of
# 4–7). Every server a spec starts takes a free port, so the runs share nothing. The recorder spec
# needs only the addon; the Firefox and WebKit demo waits for the example app (`example_built`).
example_built=$_phase_logs/example-built
realtime_browsers() {
  local rc=0
  logged e2e-recorder npx vitest run --config e2e/vitest.config.mts e2e/recorder.e2e.ts || rc=1
  while [ ! -e "$example_built" ]; do sleep 1; done
  logged e2e-engines npx vitest run --config e2e/vitest.config.mts e2e/engines.e2e.ts e2e/demo-engines.e2e.ts || rc=1
  other_browsers || rc=1
  return "$rc"
}
# The other browser specs (the example app in Debian's Chromium, and any spec not named here) run
# in whichever lane is free first: on an idle machine the one that ran vitest, on a busy one, where
# the compiles beside the recorder get little CPU, often the real-time lane. mkdir is atomic: only
# one lane claims them.
other_browsers() {
  mkdir "$_phase_logs/other-browsers" 2>/dev/null || return 0
  logged e2e npx vitest run --config e2e/vitest.config.mts \
    --exclude e2e/recorder.e2e.ts --exclude e2e/engines.e2e.ts --exclude e2e/demo-engines.e2e.ts
}
beside realtime_browsers
# The example Next.js app, installed from the npm pack tarballs of the build above (`--built`: packed,
# not built again, as the recorder spec has the addon loaded by now). If it fails, the run ends
# here and stops the specs beside it.
phase 'example app: pack, install, npx session-audio init, next build, tsc (the real-time browser specs beside this and what follows)'
nice -n 10 bash scripts/prepare-example.sh --built
touch "$example_built"
# The compiles beside that spec get what CPU it leaves (nice): its recordings must keep real time.
phase 'cargo clippy -D warnings'
nice -n 10 cargo clippy --workspace --all-targets "${build[@]}" --quiet -- -D warnings
phase 'cargo test (crates/core)'
logged cargo-test nice -n 10 cargo test -p session-audio-core "${build[@]}"
phase 'vitest (__test__/, without the release specs)'
logged vitest npx vitest run
phase 'the other browser specs (examples/nextjs in Chromium), unless the real-time lane took them'
rest=0
other_browsers || rest=$?
phase 'waiting for the real-time lane (the recorder in three engines, the demo in Firefox and WebKit)'
realtime_rc=0
joined || realtime_rc=$?
[ "$rest" -eq 0 ] && [ "$realtime_rc" -eq 0 ]
