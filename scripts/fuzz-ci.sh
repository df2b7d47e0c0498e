#!/usr/bin/env bash
# CI's fuzz step (called from scripts/test.sh): every fuzz target for a short, fixed time (10 s
# each by default, 60 s in all, plus the build), failing on any crash. The long runs behind the
# README's figures use scripts/fuzz.sh directly.
set -euo pipefail
cd "$(dirname "$0")/.."
exec scripts/fuzz.sh "${XIULOAD_FUZZ_CI_SECONDS:-10}"
