#!/usr/bin/env bash
# Install the npm dev dependencies exactly as package-lock.json pins them, when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x node_modules/.bin/napi ] || npm ci --no-audit --no-fund
