#!/usr/bin/env bash
# Builds xiu 0.14.0 from crates.io once and caches it (about 14 minutes on 2 cores), so later runs
# on the same machine skip it. Prints the binary's path on the last line.
#   cache: ${XIULOAD_CACHE:-~/.cache/xiuload}/xiu-0.14.0/bin/xiu
set -euo pipefail
version=0.14.0
cache="${XIULOAD_CACHE:-$HOME/.cache/xiuload}"
root="$cache/xiu-$version"
bin="$root/bin/xiu"
if [ -x "$bin" ]; then
  echo "install-xiu: xiu $version already installed"
  echo "$bin"
  exit 0
fi
# xiu's build needs a C/C++ toolchain, perl and make (vendored OpenSSL, aws-lc, fdk-aac) and
# libopus-dev or cmake (audiopus_sys).
need=()
for pkg in libopus-dev cmake pkg-config make perl g++; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
echo "install-xiu: building xiu $version into $root (one-off, ~14 minutes on 2 cores)"
mkdir -p "$cache"
# Build into a temporary root and move it in place, so an interrupted build never leaves a
# half-installed binary that later runs would trust.
tmp="$cache/.xiu-$version.partial"
rm -rf "$tmp"
cargo install --locked xiu --version "$version" --root "$tmp" --quiet
rm -rf "$root"
mv "$tmp" "$root"
echo "$bin"
