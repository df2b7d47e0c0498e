#!/usr/bin/env bash
# Offline checks of the Kubernetes deployment in deploy/ (no cluster needed).
#
#   .ci/deploy-checks.sh                 # every check on every overlay
#   .ci/deploy-checks.sh xiu-config      # only the named checks (any of: render kubernetes-validate
#                                        #   checkov lint xiu-config seed)
#
# Per overlay in deploy/overlays/*:
#   render               kubectl kustomize renders it
#   kubernetes-validate  --strict against the Kubernetes 1.33.0 schemas
#   checkov              framework kubernetes, no failed check (skips only via annotated reasons)
#   lint                 `$XIULOAD_BIN lint <rendered>` exits 0 (only when XIULOAD_BIN is set);
#                        demo-memory-hpa must instead be flagged with exactly hpa-target-too-low
#   xiu-config           the rendered origin + edge TOML start in a real xiu 0.14.0 on free loopback
#                        ports; a test stream published to the origin is served as HLS by the origin
#                        and, after an HTTP-FLV request made the edge pull it, by the edge too
# Plus `seed`: the seed manifests in tests/fixtures/seed must be REJECTED (its xiu config must not
# start, checkov must find failures, xiuload lint - if set - must fail).
#
# Runs as root on a fresh Debian machine: installs ffmpeg/curl/python3-venv with apt when missing,
# Python tools into ${XIULOAD_CACHE:-$HOME/.cache/xiuload}/venv, and builds xiu 0.14.0 into
# $HOME/.cache/xiuload/xiu-0.14.0 when ${XIU_BIN} is missing (~15 min; DEPLOY_CHECKS_BUILD_XIU=0 to
# refuse). kubectl must be installed. All network traffic of the tests goes to 127.0.0.1 only.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${XIULOAD_CACHE:-$HOME/.cache/xiuload}
VENV=$CACHE/venv
XIU_BIN=${XIU_BIN:-$HOME/.cache/xiuload/xiu-0.14.0/bin/xiu}
K8S_VERSION=1.33.0
KV_PIN="kubernetes-validate==1.37.0"
CHECKOV_PIN="checkov==3.3.30"

ALL_CHECKS=(render kubernetes-validate checkov lint xiu-config seed)
if (($# > 0)); then CHECKS=("$@"); else CHECKS=("${ALL_CHECKS[@]}"); fi
for c in "${CHECKS[@]}"; do
  case " ${ALL_CHECKS[*]} " in *" $c "*) ;; *) echo "unknown check: $c (known: ${ALL_CHECKS[*]})" >&2; exit 2 ;; esac
done
want() { case " ${CHECKS[*]} " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

PASSED=0
FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "PASS $1: $2"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL $1: $2"; }
log() { echo "---- $*"; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/deploy-checks.XXXXXX")
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do
    if kill -0 "$p" 2>/dev/null; then kill -INT "$p" 2>/dev/null || true; fi
  done
  sleep 0.5
  for p in "${PIDS[@]}"; do
    if kill -0 "$p" 2>/dev/null; then kill -KILL "$p" 2>/dev/null || true; fi
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------------------------------------
# tools
# ------------------------------------------------------------------------------------------------
APT_UPDATED=0
apt_install() {
  command -v apt-get >/dev/null || { echo "need $* but apt-get is missing" >&2; return 1; }
  if ((APT_UPDATED == 0)); then apt-get update -q >/dev/null; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null
}

command -v kubectl >/dev/null || { echo "FAIL setup: kubectl is not installed"; echo "deploy-checks: 0 passed, 1 failed"; exit 1; }
command -v curl >/dev/null || apt_install curl ca-certificates

ensure_venv() {
  if [[ -x $VENV/bin/kubernetes-validate && -x $VENV/bin/checkov ]]; then return 0; fi
  mkdir -p "$CACHE"
  if [[ ! -x $VENV/bin/pip ]]; then
    python3 -m venv "$VENV" 2>/dev/null || { apt_install python3-venv && python3 -m venv "$VENV"; }
  fi
  log "installing $KV_PIN $CHECKOV_PIN into $VENV"
  "$VENV/bin/pip" install -q "$KV_PIN" "$CHECKOV_PIN"
}
if want kubernetes-validate || want checkov || want xiu-config || want seed; then ensure_venv; fi
PY=$VENV/bin/python

ensure_xiu() {
  [[ -x $XIU_BIN ]] && return 0
  if [[ ${DEPLOY_CHECKS_BUILD_XIU:-1} != 1 ]]; then return 1; fi
  local root=$HOME/.cache/xiuload/xiu-0.14.0
  [[ $XIU_BIN == "$root/bin/xiu" ]] || return 1
  command -v cargo >/dev/null || return 1
  log "building xiu 0.14.0 into $root (cargo install, ~15 min)"
  apt_install cmake libopus-dev perl make g++ pkg-config
  cargo install --locked xiu --version 0.14.0 --root "$root" >"$WORK/xiu-build.log" 2>&1 \
    || { tail -20 "$WORK/xiu-build.log"; return 1; }
  [[ -x $XIU_BIN ]]
}
if want xiu-config || want seed; then
  command -v ffmpeg >/dev/null || apt_install ffmpeg
  XIU_OK=1
  ensure_xiu || XIU_OK=0
fi

# ------------------------------------------------------------------------------------------------
# helpers for the xiu run
# ------------------------------------------------------------------------------------------------
# N free TCP ports (bound on 0.0.0.0 like xiu does, then released).
free_ports() {
  "$PY" - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("0.0.0.0", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# extract_configs RENDERED OUTDIR -> writes OUTDIR/<n>.toml for every *.toml key of every ConfigMap,
# prints "<role> <file> <configmap>/<key>" per config (role: edge if it has [rtmp.pull] enabled, else origin)
extract_configs() {
  "$PY" - "$1" "$2" <<'EOF'
import sys, tomllib, yaml
rendered, out = sys.argv[1], sys.argv[2]
n = 0
for doc in yaml.safe_load_all(open(rendered)):
    if not doc or doc.get("kind") != "ConfigMap":
        continue
    for key, text in (doc.get("data") or {}).items():
        if not key.endswith(".toml"):
            continue
        try:
            cfg = tomllib.loads(text)
        except Exception as e:  # still started in xiu below: xiu's verdict is what counts
            cfg = {}
        pull = (cfg.get("rtmp") or {}).get("pull") or {}
        role = "edge" if pull.get("enabled") else "origin"
        n += 1
        path = f"{out}/{n}-{role}.toml"
        open(path, "w").write(text)
        print(role, path, f"{doc['metadata']['name']}/{key}")
EOF
}

# rewrite_config IN OUT RTMP HLS FLV API [PULL_PORT] -> every listener on the given port, the relay
# address to 127.0.0.1:PULL_PORT; everything else byte-for-byte as rendered.
rewrite_config() {
  "$PY" - "$@" <<'EOF'
import re, sys, tomllib
src, dst, rtmp, hls, flv, api = sys.argv[1:7]
pull = sys.argv[7] if len(sys.argv) > 7 else None
ports = {"rtmp": rtmp, "hls": hls, "httpflv": flv, "httpapi": api, "rtmp.pull": pull}
out, table, seen = [], None, set()
for line in open(src).read().splitlines():
    m = re.match(r"\s*\[([A-Za-z0-9_.]+)\]\s*(#.*)?$", line)
    if m:
        table = m.group(1)
        seen.add(table)
    elif table in ports and ports[table] and re.match(r"\s*port\s*=", line):
        line = f"port = {ports[table]}"
    elif table == "rtmp.pull" and re.match(r"\s*address\s*=", line):
        line = 'address = "127.0.0.1"'
    out.append(line)
if "httpapi" not in seen:  # two xiu on one host need distinct API ports too
    out += ["", "[httpapi]", f"port = {api}"]
text = "\n".join(out) + "\n"
open(dst, "w").write(text)
cfg = tomllib.loads(text)  # sanity: the rewrite kept valid TOML
EOF
}

http_code() { curl -s -o "${2:-/dev/null}" -w '%{http_code}' --max-time "${3:-2}" "$1" 2>/dev/null || true; }
tcp_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_xiu NAME DIR CONFIG -> starts xiu with DIR as working directory, sets XIU_PID
start_xiu() {
  local name=$1 dir=$2 cfg=$3
  (cd "$dir" && exec "$XIU_BIN" -c "$cfg") >"$dir/$name.log" 2>&1 &
  XIU_PID=$!
  PIDS+=("$XIU_PID")
}

# wait_listeners PID API RTMP HLS FLV -> 0 when the API answers 200 on GET / and all ports accept,
# within 15 s; 1 when xiu exited or timed out
wait_listeners() {
  local pid=$1 api=$2 i
  shift 2
  for ((i = 0; i < 30; i++)); do
    kill -0 "$pid" 2>/dev/null || return 1
    if [[ $(http_code "http://127.0.0.1:$api/") == 200 ]]; then
      local p ok=1
      for p in "$@"; do tcp_open "$p" || ok=0; done
      ((ok)) && return 0
    fi
    sleep 0.5
  done
  return 1
}

# wait_hls PORT SECONDS -> 0 when /live/check/check.m3u8 is a playlist with segments
wait_hls() {
  local port=$1 secs=$2 i body=$WORK/m3u8.$$
  for ((i = 0; i < secs; i++)); do
    if [[ $(http_code "http://127.0.0.1:$port/live/check/check.m3u8" "$body") == 200 ]] \
      && grep -q '^#EXTM3U' "$body" && grep -q '\.ts' "$body"; then
      return 0
    fi
    sleep 1
  done
  return 1
}

stop_xiu() { # SIGINT (the only signal xiu handles), wait up to 5 s, then SIGKILL
  local pid=$1 i
  kill -INT "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 25; i++)); do kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }; sleep 0.2; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  return 1
}

# xiu_config_check LABEL RENDERED -> runs origin + edge of one rendered overlay
xiu_config_check() {
  local label=$1 rendered=$2 dir=$WORK/xiu-$1
  mkdir -p "$dir"
  if ((XIU_OK == 0)); then fail "$label xiu-config" "xiu binary not found at $XIU_BIN"; return; fi
  local roles origin_cfg="" edge_cfg="" extra=""
  roles=$(extract_configs "$rendered" "$dir")
  while read -r role file ref; do
    [[ -n $role ]] || continue
    if [[ $role == origin && -z $origin_cfg ]]; then origin_cfg=$file; elif [[ $role == edge && -z $edge_cfg ]]; then edge_cfg=$file; else extra+=" $ref"; fi
  done <<<"$roles"
  if [[ -z $origin_cfg || -z $edge_cfg || -n $extra ]]; then
    fail "$label xiu-config" "expected exactly one origin and one edge xiu config, got: $(echo "$roles" | awk '{print $1"="$3}' | xargs)"
    return
  fi
  local ports op oh of oa ep eh ef ea
  read -r op oh of oa ep eh ef ea <<<"$(free_ports 8)"
  mkdir -p "$dir/origin" "$dir/edge"
  rewrite_config "$origin_cfg" "$dir/origin/xiu.toml" "$op" "$oh" "$of" "$oa"
  rewrite_config "$edge_cfg" "$dir/edge/xiu.toml" "$ep" "$eh" "$ef" "$ea" "$op"

  local opid epid fpid="" sub=""
  start_xiu origin "$dir/origin" "$dir/origin/xiu.toml"; opid=$XIU_PID
  if ! wait_listeners "$opid" "$oa" "$op" "$oh" "$of"; then
    fail "$label xiu-config" "origin did not come up (API $oa, rtmp $op, hls $oh, flv $of): $(tail -3 "$dir/origin/origin.log" | tr '\n' ' ')"
    stop_xiu "$opid" || true; return
  fi
  start_xiu edge "$dir/edge" "$dir/edge/xiu.toml"; epid=$XIU_PID
  if ! wait_listeners "$epid" "$ea" "$ep" "$eh" "$ef"; then
    fail "$label xiu-config" "edge did not come up: $(tail -3 "$dir/edge/edge.log" | tr '\n' ' ')"
    stop_xiu "$epid" || true; stop_xiu "$opid" || true; return
  fi

  # a 40 s test stream (H.264 + AAC, keyframe every 2 s = the 2 s HLS fragment)
  timeout 60 ffmpeg -nostdin -hide_banner -loglevel error -re \
    -f lavfi -i testsrc=size=640x360:rate=25 -f lavfi -i sine \
    -c:v libx264 -preset veryfast -g 50 -c:a aac -t 40 \
    -f flv "rtmp://127.0.0.1:$op/live/check" >"$dir/ffmpeg.log" 2>&1 &
  fpid=$!
  PIDS+=("$fpid")

  local result="" why=""
  if ! wait_hls "$oh" 20; then
    why="origin served no HLS playlist for live/check within 20 s"
  else
    # Edge: the first HTTP-FLV request only triggers the pull (empty body); retry until media flows.
    local i got=0 flv=$dir/edge.flv
    for ((i = 0; i < 10; i++)); do
      curl -s --max-time 3 -o "$flv" "http://127.0.0.1:$ef/live/check.flv" 2>/dev/null || true
      if [[ -s $flv ]] && [[ $(head -c 3 "$flv") == FLV ]]; then got=1; break; fi
      sleep 1
    done
    if ((got == 0)); then
      why="edge never served live/check over HTTP-FLV (relay pull from the origin failed)"
    else
      # keep one subscriber on the edge (what the sidecar does in the cluster) while HLS is checked
      curl -s --max-time 25 -o /dev/null "http://127.0.0.1:$ef/live/check.flv" 2>/dev/null &
      sub=$!
      PIDS+=("$sub")
      if wait_hls "$eh" 20; then
        result="origin+edge up, origin HLS ok, edge pulled ($(stat -c %s "$flv") FLV bytes in 3 s), edge HLS ok"
      else
        why="edge pulled the stream but served no HLS playlist within 20 s"
      fi
    fi
  fi
  if grep -q 'panicked' "$dir/origin/origin.log" "$dir/edge/edge.log"; then
    why="${why:+$why; }xiu panicked: $(grep -h -m1 'panicked' "$dir/origin/origin.log" "$dir/edge/edge.log" | head -1)"
  fi
  [[ -n $sub ]] && kill "$sub" 2>/dev/null || true
  kill -INT "$fpid" 2>/dev/null || true
  local stopped=1
  stop_xiu "$epid" || stopped=0
  stop_xiu "$opid" || stopped=0
  wait "$fpid" 2>/dev/null || true
  ((stopped)) || why="${why:+$why; }xiu did not exit within 5 s of SIGINT"
  if [[ -z $why ]]; then pass "$label xiu-config" "$result, both exited on SIGINT"; else fail "$label xiu-config" "$why"; fi
}

# checkov_run FILE -> sets CK_SUMMARY ("passed P, failed F, skipped S") and CK_FAILED (ids); returns F
checkov_run() {
  local out=$WORK/checkov.out
  "$VENV/bin/checkov" -f "$1" --framework kubernetes --skip-download --compact --quiet >"$out" 2>&1 || true
  local line
  line=$(grep -m1 -E 'Passed checks: [0-9]+, Failed checks: [0-9]+, Skipped checks: [0-9]+' "$out" || true)
  if [[ -z $line ]]; then CK_SUMMARY="no checkov summary: $(tail -3 "$out" | tr '\n' ' ')"; CK_FAILED=""; return 255; fi
  local p f s
  p=$(sed -E 's/.*Passed checks: ([0-9]+).*/\1/' <<<"$line")
  f=$(sed -E 's/.*Failed checks: ([0-9]+).*/\1/' <<<"$line")
  s=$(sed -E 's/.*Skipped checks: ([0-9]+).*/\1/' <<<"$line")
  CK_SUMMARY="passed $p, failed $f, skipped $s"
  CK_FAILED=$(grep -oE 'Check: (CKV2?_K8S_[0-9]+)' "$out" | awk '{print $2}' | sort -u | xargs || true)
  return $((f > 254 ? 254 : f))
}

LINT_RULES="service-selector-no-match pdb-selector-no-match service-target-port-unknown ingress-backend-port-unknown probe-port-unknown hpa-target-missing hpa-resource-without-request hpa-min-gt-max hpa-target-too-low rollout-can-take-all-down no-readiness-probe ingress-tls-host-without-rule rtmp-through-http-ingress xiu-config-invalid xiu-config-hls-no-s3 xiu-edge-no-relay"
lint_rules_in() { local r found=""; for r in $LINT_RULES; do grep -q -- "$r" "$1" && found+=" $r"; done; echo "${found# }"; }

# ------------------------------------------------------------------------------------------------
# overlays
# ------------------------------------------------------------------------------------------------
OVERLAYS=()
for d in "$ROOT"/deploy/overlays/*/; do [[ -f $d/kustomization.yaml ]] && OVERLAYS+=("$(basename "$d")"); done
((${#OVERLAYS[@]} > 0)) || { fail setup "no overlays under deploy/overlays"; }

for ov in "${OVERLAYS[@]}"; do
  log "overlay $ov"
  rendered=$WORK/$ov.yaml
  if ! kubectl kustomize "$ROOT/deploy/overlays/$ov" >"$rendered" 2>"$WORK/$ov.render.err"; then
    fail "$ov render" "kubectl kustomize failed: $(head -3 "$WORK/$ov.render.err" | tr '\n' ' ')"
    continue
  fi
  nobj=$(grep -c '^kind:' "$rendered" || true)
  want render && pass "$ov render" "kubectl kustomize: $nobj objects"

  if want kubernetes-validate; then
    kvout=$WORK/$ov.kv
    if "$VENV/bin/kubernetes-validate" --strict --kubernetes-version "$K8S_VERSION" "$rendered" >"$kvout" 2>&1; then
      pass "$ov kubernetes-validate" "$(grep -c ' passed ' "$kvout" || true)/$nobj objects valid (strict, $K8S_VERSION)"
    else
      fail "$ov kubernetes-validate" "$(grep -vE ' passed ' "$kvout" | head -5 | tr '\n' ' ')"
    fi
  fi

  if want checkov; then
    if checkov_run "$rendered"; then
      pass "$ov checkov" "$CK_SUMMARY"
    else
      fail "$ov checkov" "$CK_SUMMARY; failed: ${CK_FAILED:-?}"
    fi
  fi

  if want lint && [[ -n ${XIULOAD_BIN:-} ]]; then
    lout=$WORK/$ov.lint
    rc=0
    timeout 60 "$XIULOAD_BIN" lint "$rendered" >"$lout" 2>&1 || rc=$?
    if [[ $ov == demo-memory-hpa ]]; then
      # the seed's 1 % memory target is kept on purpose here: lint must flag it, and only it
      rules=$(lint_rules_in "$lout")
      if ((rc != 0)) && [[ $rules == hpa-target-too-low ]]; then
        pass "$ov lint" "xiuload lint flags exactly hpa-target-too-low (expected for this demo, exit $rc)"
      else
        fail "$ov lint" "expected a non-zero exit with only hpa-target-too-low, got exit $rc, rules: ${rules:-none}"
      fi
    elif ((rc == 0)); then
      pass "$ov lint" "xiuload lint: exit 0"
    else
      fail "$ov lint" "xiuload lint exit $rc: $(lint_rules_in "$lout") $(head -5 "$lout" | tr '\n' ' ')"
    fi
  elif want lint; then
    echo "SKIP $ov lint: XIULOAD_BIN is not set"
  fi

  if want xiu-config; then xiu_config_check "$ov" "$rendered"; fi
done

# ------------------------------------------------------------------------------------------------
# the seed must be rejected (proves the checks above can fail)
# ------------------------------------------------------------------------------------------------
if want seed; then
  log "seed manifests (tests/fixtures/seed) - expected to be rejected"
  seed=$WORK/seed.yaml
  if ! kubectl kustomize "$ROOT/tests/fixtures/seed" >"$seed" 2>/dev/null; then
    fail "seed render" "kubectl kustomize tests/fixtures/seed failed"
  else
    if checkov_run "$seed"; then
      fail "seed checkov" "checkov found nothing wrong with the seed ($CK_SUMMARY)"
    else
      pass "seed checkov" "rejected as expected ($CK_SUMMARY): $CK_FAILED"
    fi
    if ((XIU_OK == 0)); then
      fail "seed xiu-config" "xiu binary not found at $XIU_BIN"
    else
      sdir=$WORK/xiu-seed
      mkdir -p "$sdir"
      read -r cfgrole cfgfile _ <<<"$(extract_configs "$seed" "$sdir" | head -1)"
      read -r sp sh sf sa <<<"$(free_ports 4)"
      rewrite_config "$cfgfile" "$sdir/xiu.toml" "$sp" "$sh" "$sf" "$sa"
      start_xiu seed "$sdir" "$sdir/xiu.toml"; spid=$XIU_PID
      if wait_listeners "$spid" "$sa" "$sp" "$sh" "$sf"; then
        fail "seed xiu-config" "the seed's config started xiu - the xiu-config check would not catch it"
      else
        pass "seed xiu-config" "seed config rejected by xiu: $(grep -m1 -oE 'missing field `?[a-z_]+`?' "$sdir/seed.log" || tail -1 "$sdir/seed.log")"
      fi
      stop_xiu "$spid" || true
    fi
    if [[ -n ${XIULOAD_BIN:-} ]]; then
      rc=0
      timeout 60 "$XIULOAD_BIN" lint "$seed" >"$WORK/seed.lint" 2>&1 || rc=$?
      if ((rc != 0)); then pass "seed lint" "xiuload lint rejects the seed (exit $rc): $(lint_rules_in "$WORK/seed.lint")"
      else fail "seed lint" "xiuload lint accepted the seed"; fi
    fi
  fi
fi

echo "deploy-checks: $PASSED passed, $FAILED failed"
((FAILED == 0))
