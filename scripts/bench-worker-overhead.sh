#!/usr/bin/env bash
# A distributed worker's overhead over a plain run of the same shard (README "Running bigger than
# one machine"): runs scenarios/bench-worker.toml twice against the same kind of local xiu, once as
# `xiuload run --shard 0/2` (plain) and once as `--local-workers 2` (worker 0 does the same shard),
# and prints both processes' CPU (mean % of one core over the run) and peak RSS, and the ratio.
#   Usage: scripts/bench-worker-overhead.sh [ROUNDS (default 3)]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"
export XIU_BIN="${XIU_BIN:-$(scripts/install-xiu.sh | tail -n 1)}"
cargo build --release --quiet
bin=target/release/xiuload
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for round in $(seq 1 "$rounds"); do
  "$bin" run scenarios/bench-worker.toml --shard 0/2 --quiet --out "$tmp/plain-$round" > /dev/null || true
  "$bin" run scenarios/bench-worker.toml --local-workers 2 --quiet --out "$tmp/workers-$round" > /dev/null || true
done
python3 - "$tmp" "$rounds" <<'PY'
import json, sys, statistics
tmp, rounds = sys.argv[1], int(sys.argv[2])
plain, worker, plain_rss, worker_rss = [], [], [], []
for r in range(1, rounds + 1):
    p = json.load(open(f"{tmp}/plain-{r}/report.json"))
    w = json.load(open(f"{tmp}/workers-{r}/report.json"))
    plain.append(p["loader"]["cpu_percent_mean"])
    w0 = w["loader"]["workers"][0]
    worker.append(w0["cpu_percent_mean"])
    plain_rss.append(max(x.get("loader_rss_mib") or 0 for x in map(json.loads, open(f"{tmp}/plain-{r}/timeline.jsonl"))))
    worker_rss.append(w0["rss_mib_max"] or 0)
mp, mw = statistics.mean(plain), statistics.mean(worker)
print(f"plain shard run : CPU {mp:.1f} % of one core (rounds: {', '.join(f'{x:.1f}' for x in plain)}), RSS max {max(plain_rss):.0f} MiB")
print(f"worker 0 of 2   : CPU {mw:.1f} % of one core (rounds: {', '.join(f'{x:.1f}' for x in worker)}), RSS max {max(worker_rss):.0f} MiB")
print(f"worker / plain  : CPU {mw / mp:.3f}, RSS {max(worker_rss) / max(plain_rss):.3f}")
PY
