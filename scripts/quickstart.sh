#!/usr/bin/env bash
# README "Quick start": installs what a local run needs (ffmpeg, xiu 0.14.0 built once into a cache),
# builds xiuload and runs scenarios/local-smoke.toml against a xiu it starts on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --no-python
export XIU_BIN="${XIU_BIN:-$(scripts/install-xiu.sh | tail -n 1)}"
cargo build --release --quiet
exec target/release/xiuload run scenarios/local-smoke.toml "$@"
