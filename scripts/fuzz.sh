#!/usr/bin/env bash
# Coverage-guided fuzzing of xiuload's parsers (README "Fuzzing"): builds the targets in fuzz/ with
# cargo-fuzz (libFuzzer), runs each for SECONDS, and prints per target the executions and the
# crashes found. Exits non-zero if any target crashed (a panic, a failed assertion, a hang past
# 10 s or memory past 2 GiB); the crashing input is kept under fuzz/artifacts/<target>/.
#   Usage: scripts/fuzz.sh [SECONDS (default 60)] [TARGET...]   targets: flv ts playlist http1 rtmp scenario
#   XIULOAD_FUZZ_RUNS=N stops a target after N executions if that comes before SECONDS.
# Reproduce a crash: scripts/fuzz.sh --repro TARGET fuzz/artifacts/TARGET/crash-...
#
# cargo-fuzz is installed once into the cache beside xiu (${XIULOAD_CACHE:-~/.cache/xiuload}), and
# the fuzz build goes there too, so a second run on the same machine only rebuilds what changed.
# The corpus each target grows is kept there as well; the committed seeds (fuzz/corpus/) and the
# inputs that once crashed (fuzz/regressions/, run first: a regression fails at once) are only read.
set -euo pipefail
cd "$(dirname "$0")/.."

all_targets=(flv ts playlist http1 rtmp scenario)
cargo_fuzz_version=0.13.2
cache="${XIULOAD_CACHE:-$HOME/.cache/xiuload}"

repro=""
if [ "${1:-}" = "--repro" ]; then
  repro="${3:?usage: scripts/fuzz.sh --repro TARGET INPUT}"
  targets=("${2:?usage: scripts/fuzz.sh --repro TARGET INPUT}")
else
  seconds="${1:-60}"
  [ $# -gt 0 ] && shift
  case "$seconds" in ''|*[!0-9]*) echo "fuzz.sh: SECONDS must be a whole number, got '$seconds'" >&2; exit 2;; esac
  targets=("$@")
  [ ${#targets[@]} -eq 0 ] && targets=("${all_targets[@]}")
  for t in "${targets[@]}"; do
    [ -f "fuzz/fuzz_targets/$t.rs" ] || { echo "fuzz.sh: no target '$t' (have: ${all_targets[*]})" >&2; exit 2; }
  done
fi

# cargo-fuzz, built once. Into a temporary root first, so an interrupted install is never trusted.
root="$cache/cargo-fuzz-$cargo_fuzz_version"
if [ ! -x "$root/bin/cargo-fuzz" ]; then
  echo "fuzz.sh: installing cargo-fuzz $cargo_fuzz_version into $root (one-off)"
  mkdir -p "$cache"
  rm -rf "$root.partial"
  nice -n 15 cargo install --locked cargo-fuzz --version "$cargo_fuzz_version" --root "$root.partial" --quiet
  rm -rf "$root"
  mv "$root.partial" "$root"
fi
export PATH="$root/bin:$PATH"

# cargo-fuzz passes rustc flags that are nightly-only (--cfg fuzzing, sanitizer coverage options);
# this machine has a stable toolchain only, and RUSTC_BOOTSTRAP lets stable rustc accept them.
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${XIULOAD_FUZZ_TARGET_DIR:-$cache/fuzz-target}"
# Optimised, with debug assertions and overflow checks: an arithmetic overflow on hostile input is
# a finding even though release builds of xiuload would wrap silently. No sanitizer: the targets
# are safe Rust, and ASan would halve the executions. 16 codegen units: the build is most of a
# short run's time (cargo-fuzz's default of 1 is for the last few percent of speed).
build_flags=(--release --debug-assertions --sanitizer none --codegen-units 16)
# One target by name, or all of them (cargo-fuzz builds one or all).
build_target=()
[ ${#targets[@]} -eq 1 ] && build_target=("${targets[0]}")
echo "fuzz.sh: building fuzz targets into $CARGO_TARGET_DIR"
build_started=$SECONDS
if ! (cd fuzz && nice -n 15 cargo fuzz build "${build_flags[@]}" "${build_target[@]}"); then
  echo "fuzz.sh: cargo fuzz build failed" >&2
  exit 3
fi
bin_dir="$CARGO_TARGET_DIR/$(rustc -vV | sed -n 's/^host: //p')/release"
for t in "${targets[@]}"; do
  [ -x "$bin_dir/$t" ] || { echo "fuzz.sh: build of target '$t' failed" >&2; exit 3; }
done
echo "fuzz.sh: built in $((SECONDS - build_started)) s"

if [ -n "$repro" ]; then
  exec "$bin_dir/${targets[0]}" "$repro"
fi

failed=0
printf '%-10s %14s %10s  %s\n' target executions crashes "crashing inputs"
for t in "${targets[@]}"; do
  artifacts="fuzz/artifacts/$t"
  work="$cache/fuzz-corpus/$t"
  mkdir -p "$artifacts" "$work"
  log="$artifacts/last-run.log"
  set +e
  # Inputs that once crashed (fuzz/regressions/<target>/) run first, with the seeds.
  inputs=("$work" "fuzz/corpus/$t")
  [ -d "fuzz/regressions/$t" ] && inputs+=("fuzz/regressions/$t")
  nice -n 15 "$bin_dir/$t" \
    -max_total_time="$seconds" -runs="${XIULOAD_FUZZ_RUNS:--1}" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" \
    "${inputs[@]}" >"$log" 2>&1
  status=$?
  set -e
  # Executions: the final stats when libFuzzer got to print them, else its last status line.
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  [ -n "$execs" ] || execs=$(grep -o '^#[0-9]*' "$log" | tail -n 1 | tr -d '#')
  # The inputs libFuzzer saved: crashes, hangs past -timeout, memory past -rss_limit_mb.
  new=$(sed -n 's/.*Test unit written to //p' "$log")
  crashes=$(printf '%s' "$new" | grep -c . || true)
  if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then
    # Died without saving an input (e.g. killed): still a failure, and the log says why.
    crashes="?"
  fi
  printf '%-10s %14s %10s  %s\n' "$t" "${execs:-0}" "$crashes" "$(echo $new)"
  if [ "$status" -ne 0 ] || [ "$crashes" != 0 ]; then
    failed=1
    echo "---- $t: libFuzzer exited $status; the panic and where it happened (all of it: $log):"
    grep -A1 -m1 'panicked at' "$log" || true
    # The stack frames in xiuload and the fuzz target, then libFuzzer's verdict.
    grep -E '^ +at \./(src|fuzz)/' "$log" | head -n 8 || true
    grep -E 'ERROR: libFuzzer|Test unit written' "$log" | head -n 2 || true
    echo "----"
  fi
done
if [ "$failed" -ne 0 ]; then
  echo "fuzz.sh: crashes found (inputs under fuzz/artifacts/; reproduce with scripts/fuzz.sh --repro TARGET INPUT)"
  exit 1
fi
echo "fuzz.sh: no crashes"
