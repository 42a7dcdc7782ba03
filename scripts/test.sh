#!/usr/bin/env bash
# The whole test suite: build, Rust unit tests, lints, then the vitest suites against the real
# addon and real loopback servers. `npm test` runs this; so does .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-built.sh
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== prettier --check"
npx prettier --check "**/*.{js,mjs,ts}" --log-level warn
echo "== cargo test (crates/core)"
cargo test -p session-audio-core
echo "== vitest"
npx vitest run
