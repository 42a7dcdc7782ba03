#!/usr/bin/env bash
# The whole test suite: build, Rust unit tests, lints, the vitest suites against the real addon
# and real loopback servers, then the example app in a real browser. `npm test` runs this; so does .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
# The portable platform binaries first (glibc floor 2.17; tested in __test__/binary.spec.ts).
bash scripts/build-all.sh
# Then the test build, which carries the test-only panic hook (crates/core feature `test-hooks`);
# `npm run build`, build-all and the published binaries never do. Its own target directory, so
# that it and the plain build the browser tests pack are both kept, and a rerun rebuilds neither.
bash scripts/ensure-built.sh --features test-hooks --target-dir target/test-hooks
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== prettier --check"
npx prettier --check "**/*.{js,mjs,ts,tsx}" --log-level warn
echo "== cargo test (crates/core)"
cargo test -p session-audio-core
echo "== vitest"
npx vitest run
# Last: the example Next.js app, installed from the npm pack tarballs, in Debian's Chromium.
echo "== browser tests (examples/nextjs in Chromium)"
npm run test:e2e
