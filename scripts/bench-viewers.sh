#!/usr/bin/env bash
# What one more viewer costs xiuload (README "Benchmark"): builds the release binary and runs
# benches/players.rs, which measures CPU and RSS per added viewer for HTTP-FLV, HTTPS-FLV, RTMP and
# HLS on xiuload's synthetic stream and on a real libx264 stream that ffmpeg encodes on the spot.
# Needs xiu 0.14.0 (built once by scripts/install-xiu.sh) and ffmpeg (scripts/install-deps.sh).
# Default: 200 viewers, median of 3 runs, about 10 minutes on 2 cores.
#   Usage: scripts/bench-viewers.sh [SIZE...] [--repeats N] [--protocols flv,https,rtmp,hls]
#                                   [--streams synthetic,encoded]
#   e.g.   scripts/bench-viewers.sh 100 500 1000
#          scripts/bench-viewers.sh --repeats 1 --protocols rtmp --streams encoded
#   XIULOAD_BIN=/path/to/xiuload measures another build's viewers with the same harness (keep a
#   copy of an older target/release/xiuload to compare before and after).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v ffmpeg >/dev/null || { echo "bench-viewers: ffmpeg is missing (scripts/install-deps.sh)" >&2; exit 2; }
export XIU_BIN="${XIU_BIN:-$(scripts/install-xiu.sh | tail -n 1)}"
cargo build --release --quiet --bin xiuload
exec cargo bench --quiet --bench players -- "$@"
