#!/usr/bin/env bash
# Install the npm dev dependencies exactly as package-lock.json pins them, when they are missing or
# the lockfile changed since they were installed (a pull that adds a dependency, say).
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=node_modules/.session-audio-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -x node_modules/.bin/napi ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  npm ci --no-audit --no-fund
  echo "$want" >"$stamp"
fi
