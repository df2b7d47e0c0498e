#!/usr/bin/env bash
# The project's test command (README "Quick start", and what CI runs): installs what the tests need
# (scripts/install-deps.sh), then formatting, lints, the offline deploy checks and every test.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
export XIU_BIN="${XIU_BIN:-$(scripts/install-xiu.sh | tail -n 1)}"

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --quiet -- -D warnings
echo "== cargo build"
cargo build --quiet --all-targets
echo "== deploy checks (.ci/deploy-checks.sh)"
XIULOAD_BIN="$PWD/target/debug/xiuload" .ci/deploy-checks.sh
echo "== fuzzing (scripts/fuzz-ci.sh: every target briefly, the regression inputs first)"
scripts/fuzz-ci.sh
echo "== cargo test"
# Integration tests start real xiu processes and generate real-time load: two at a time is what
# a 2-core machine holds without the load generator measuring itself.
cargo test --all-targets -- --test-threads=2
