#!/usr/bin/env bash
# `npm test`: the whole suite a change must pass, on an idle clean clone in ≤ 12 minutes on 2 cores (docs/development.md).
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
# Two lanes beside the main one, on 2 cores. The real-time lane: the Chromium recorder spec (minutes
# of fake-microphone recording, little CPU; it needs only the addon). The compile lane: clippy and
# `cargo test` at a low CPU priority (nice), so the recording keeps real time and vitest gets its CPU;
# a lint failure shows at the end of the run, not after 3 minutes. In front, the example app's build,
# vitest, then the other browser specs. Every server a spec starts takes a free port, so the runs
# share nothing; only cargo takes the build folder's lock, and only the compile lane runs cargo.
realtime_browsers() {
  logged e2e-recorder npx vitest run --config e2e/vitest.config.mts e2e/recorder.e2e.ts
}
compiles() {
  timed clippy nice -n 10 cargo clippy --workspace --all-targets "${build[@]}" --quiet -- -D warnings || return 1
  logged cargo-test nice -n 10 cargo test -p session-audio-core "${build[@]}"
}
beside realtime_browsers
beside compiles
# The example Next.js app, installed from the npm pack tarballs of the build above (`--built`: packed,
# not built again, as the recorder spec has the addon loaded by now). If it fails, the run ends
# here and stops the lanes beside it.
phase 'example app: pack, install, npx session-audio init, next build, tsc (the other two lanes beside this and what follows)'
bash scripts/prepare-example.sh --built
phase 'vitest (__test__/, without the release specs)'
# At a lower CPU priority than the Chromium recorder beside it, which records in real time.
logged vitest nice -n 5 npx vitest run
phase 'the other browser specs (examples/nextjs in Chromium, the recorder in Firefox and WebKit)'
rest=0
logged e2e npx vitest run --config e2e/vitest.config.mts --exclude e2e/recorder.e2e.ts --exclude e2e/demo-engines.e2e.ts || rest=1
phase 'waiting for the real-time lane (the recorder in Chromium) and the compiles (clippy, cargo test)'
lanes_rc=0
joined || lanes_rc=$?
# Last, with nothing beside it: the demo in Firefox ESR and WebKitGTK checks the lengths it recorded
# against the wall clock, and Firefox's fake microphone falls behind real time when the CPU is taken
# (a 21 s recording came out 18.1 s long, a 15 s one 12.99 s, beside vitest; one CI run failed it
# beside the other browser specs).
phase 'the demo in Firefox and WebKit (alone)'
logged e2e-demo-engines npx vitest run --config e2e/vitest.config.mts e2e/demo-engines.e2e.ts || rest=1
[ "$rest" -eq 0 ] && [ "$lanes_rc" -eq 0 ]
