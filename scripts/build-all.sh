#!/usr/bin/env bash
# Build every platform package this machine can build, the napi-rs way, into npm/<platform>/:
#   linux-x64-gnu, linux-arm64-gnu   glibc floor 2.17, as napi-rs's own releases
#   linux-x64-musl, linux-arm64-musl  static musl (Alpine)
#   darwin-arm64, darwin-x64          macOS floor 11.0 (arm64) / 10.15 (x64), MACOSX_DEPLOYMENT_TARGET
# all with cargo-zigbuild + zig, the same flags for every target (zig links macOS binaries against
# the libSystem stubs it ships: no Apple SDK). Each target's Rust standard library is added with
# rustup when missing; a target whose library cannot be had is reported and skipped. Windows, and
# the macOS binaries that are published, are built by .github/workflows/release.yml on hosted runners;
# scripts/macho-check checks either (npm run test:release).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh

# zig from the Python package index (the `ziglang` wheel ships the compiler), cargo-zigbuild via cargo install.
python3 -c 'import ziglang' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check 'ziglang==0.17.0'
ZIG_DIR=$(python3 -c 'import os, ziglang; print(os.path.dirname(ziglang.__file__))')
export PATH="$ZIG_DIR:$PATH"
command -v cargo-zigbuild >/dev/null || cargo install --locked --quiet cargo-zigbuild

# The napi platform suffix of a Rust target (the binary is artifacts/session-audio.<suffix>.node).
target_platform() {
  case $1 in
    x86_64-unknown-linux-gnu) echo linux-x64-gnu ;;
    aarch64-unknown-linux-gnu) echo linux-arm64-gnu ;;
    x86_64-unknown-linux-musl) echo linux-x64-musl ;;
    aarch64-unknown-linux-musl) echo linux-arm64-musl ;;
    aarch64-apple-darwin) echo darwin-arm64 ;;
    x86_64-apple-darwin) echo darwin-x64 ;;
  esac
}

# The oldest macOS each macOS binary runs on (recorded as its LC_BUILD_VERSION minos; without
# MACOSX_DEPLOYMENT_TARGET zig records the newest it knows, 15.0). arm64: 11.0, the first macOS on
# Apple silicon. x64: 10.15, the oldest macOS Node 20 (engines) runs on. __test__/binary.spec.ts
# checks the binaries record exactly these.
macos_floor() {
  case $1 in
    aarch64-apple-darwin) echo 11.0 ;;
    x86_64-apple-darwin) echo 10.15 ;;
  esac
}

mkdir -p artifacts target/cross
installed=$(rustup target list --installed)
# What the binaries are built from. A target whose binary was built from exactly these bytes is not
# rebuilt: a rerun on a machine that already has the toolchains costs seconds, not minutes.
sources=$(find Cargo.toml Cargo.lock build.rs src crates/core/Cargo.toml crates/core/src -type f | sort | xargs sha256sum | sha256sum | cut -c1-16)
built=()
for target in x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu x86_64-unknown-linux-musl aarch64-unknown-linux-musl \
  aarch64-apple-darwin x86_64-apple-darwin; do
  if ! grep -qx "$target" <<<"$installed" && ! timeout 300 rustup target add "$target"; then
    echo "skipped $target: its Rust standard library could not be installed (rustup target add $target)"
    continue
  fi
  versioned=$target
  [ "$target" = x86_64-unknown-linux-gnu ] || [ "$target" = aarch64-unknown-linux-gnu ] && versioned="$target.2.17"
  floor=$(macos_floor "$target")
  key="$sources${floor:+ macos $floor}"
  stamp=target/cross/$target.sources
  if [ "$(cat "$stamp" 2>/dev/null)" = "$key" ] && ls artifacts/*."$(target_platform "$target")".node >/dev/null 2>&1; then
    echo "== $versioned: unchanged since its last build ($key)"
  else
    echo "== building $versioned"
    ${floor:+env MACOSX_DEPLOYMENT_TARGET=$floor} npx napi build --platform --release --target "$versioned" --cross-compile \
      --target-dir target/cross --output-dir artifacts --no-js --dts artifacts/binding.d.ts
    echo "$key" >"$stamp"
  fi
  built+=("$target")
done

# Copy each built binary into its platform package (npm/<platform>/), ready for `napi prepublish`.
targets_json=$(printf '"%s",' "${built[@]}")
echo "{\"binaryName\":\"session-audio\",\"targets\":[${targets_json%,}]}" >artifacts/napi.json
npx napi create-npm-dirs
npx napi artifacts --output-dir artifacts --npm-dir npm -c artifacts/napi.json
for f in artifacts/*.node; do
  echo "$(basename "$f"): $(stat -c %s "$f") bytes"
done
