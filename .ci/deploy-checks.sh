#!/usr/bin/env bash
# Offline checks of the Kubernetes deployment in deploy/ (no cluster needed).
#
#   .ci/deploy-checks.sh                 # every check on every overlay
#   .ci/deploy-checks.sh xiu-config      # only the named checks (any of: render kubernetes-validate
#                                        #   checkov lint xiu-config fixtures seed)
#
# Per overlay in deploy/overlays/*:
#   render               kubectl kustomize renders it
#   kubernetes-validate  --strict against the Kubernetes 1.33.0 schemas
#   checkov              framework kubernetes, no failed check (skips only via annotated reasons)
#   lint                 `$XIULOAD_BIN lint <rendered>` (only when XIULOAD_BIN is set) flags exactly
#                        cidr-placeholder as shipped (the CIDRs are the operator's to set), and exits
#                        0 once the placeholder CIDRs are replaced by private ones (what an operator
#                        does); demo-memory-hpa must then be flagged with exactly hpa-target-too-low
#   xiu-config           each rendered origin + edge xiu config TEMPLATE is filled in by the pod's own
#                        render-config init container script (which must refuse a bad token), then
#                        started in a real xiu 0.14.0 on free loopback ports: the origin refuses a
#                        publisher without the publish token and takes one with it; the edge refuses
#                        publishers without the relay token (even with the publish token); the
#                        rendered `xiuload sidecar` args (binary: $XIULOAD_SIDECAR_BIN, else
#                        $XIULOAD_BIN) run against as many loopback origins as the render lists and
#                        relay a stream from each into the edge (HLS + HTTP-FLV served, /readyz 200,
#                        /drain 200 then /readyz false); a binary without --origin-flv gets ffmpeg
#                        doing the relay instead; every xiu exits on SIGINT
#   distributed          `$XIULOAD_BIN render scenarios/staging-distributed.toml` (the ConfigMap and
#                        Indexed Job of a distributed run) passes kubernetes-validate --strict and
#                        `xiuload lint` with no finding (only when XIULOAD_BIN is set)
#   fixtures             the prod and yandex-alb renders (placeholders replaced) equal
#                        tests/fixtures/clean/*.yaml, the input of the linter's mutation tests
#                        (DEPLOY_CHECKS_WRITE_FIXTURES=1 rewrites them)
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

ALL_CHECKS=(render kubernetes-validate checkov lint xiu-config fixtures seed distributed)
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
if want kubernetes-validate || want checkov || want xiu-config || want seed || want distributed; then ensure_venv; fi
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

# extract_configs RENDERED OUTDIR -> writes OUTDIR/<n>-<role>.toml for every *.toml key of every
# ConfigMap and, when a workload renders that ConfigMap through a `render-config` init container,
# that container's script to OUTDIR/<n>-<role>.render.sh. Prints "<role> <file> <configmap>/<key>
# <script or ->" per config. role: the ConfigMap's `component` label (origin/edge); without one,
# edge if it has [rtmp.pull] enabled (the seed's shape), else origin.
extract_configs() {
  "$PY" - "$1" "$2" <<'EOF'
import sys, tomllib, yaml
rendered, out = sys.argv[1], sys.argv[2]
docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
# ConfigMap name -> render-config script of the workload that mounts it
scripts = {}
for d in docs:
    spec = (((d.get("spec") or {}).get("template") or {}).get("spec")) or {}
    vols = {v["name"]: (v.get("configMap") or {}).get("name") for v in spec.get("volumes") or []}
    for c in spec.get("initContainers") or []:
        if c.get("name") != "render-config":
            continue
        for m in c.get("volumeMounts") or []:
            if vols.get(m["name"]):
                scripts[vols[m["name"]]] = c["command"][2]
n = 0
for doc in docs:
    if doc.get("kind") != "ConfigMap":
        continue
    name = doc["metadata"]["name"]
    for key, text in (doc.get("data") or {}).items():
        if not key.endswith(".toml"):
            continue
        try:
            cfg = tomllib.loads(text)
        except Exception as e:  # still started in xiu below: xiu's verdict is what counts
            cfg = {}
        role = ((doc["metadata"].get("labels") or {}).get("component"))
        if role not in ("origin", "edge"):
            pull = (cfg.get("rtmp") or {}).get("pull") or {}
            role = "edge" if pull.get("enabled") else "origin"
        n += 1
        path = f"{out}/{n}-{role}.toml"
        open(path, "w").write(text)
        script = "-"
        if name in scripts:
            script = f"{out}/{n}-{role}.render.sh"
            open(script, "w").write(scripts[name])
        print(role, path, f"{name}/{key}", script)
EOF
}

# render_template SCRIPT TOKEN IN OUT -> runs the pod's render-config script as the init container
# does (sh -c SCRIPT render-config IN OUT TOKEN_FILE, the token in a file like the Secret volume's);
# its exit status
render_template() {
  local tf=$WORK/token.$$
  printf '%s' "$2" >"$tf"
  sh -c "$(cat "$1")" render-config "$3" "$4" "$tf" 2>>"$WORK/render.err"
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

# wait_hls PORT SECONDS [STREAM] -> 0 when /live/STREAM/STREAM.m3u8 (default check) is a playlist
# with segments
wait_hls() {
  local port=$1 secs=$2 stream=${3:-check} i body=$WORK/m3u8.$$
  for ((i = 0; i < secs; i++)); do
    if [[ $(http_code "http://127.0.0.1:$port/live/$stream/$stream.m3u8" "$body") == 200 ]] \
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

# sidecar_args RENDERED count -> how many origins the rendered edge sidecar lists (--origin-api)
# sidecar_args RENDERED APIS FLVS EDGE_FLV EDGE_RTMP EDGE_API EDGE_HLS LISTEN -> the rendered sidecar's
# arguments after `sidecar`, one per line, with the i-th --origin-api/--origin-flv pointed at the
# i-th loopback port of APIS/FLVS (comma-separated) and the edge and listen addresses at loopback
sidecar_args() {
  "$PY" - "$@" <<'EOF'
import sys, yaml
rendered = sys.argv[1]
for d in yaml.safe_load_all(open(rendered)):
    if not d or d.get("kind") != "Deployment":
        continue
    spec = d["spec"]["template"]["spec"]
    for c in spec.get("containers", []) + spec.get("initContainers", []):
        words = (c.get("command") or []) + (c.get("args") or [])
        if "sidecar" not in words or not any(w.rsplit("/", 1)[-1] == "xiuload" for w in words):
            continue
        args = words[words.index("sidecar") + 1:]
        pairs, i = [], 0
        while i < len(args):
            a = args[i]
            if a.startswith("--") and "=" in a:
                pairs.append(tuple(a[2:].split("=", 1))); i += 1
            elif a.startswith("--") and i + 1 < len(args):
                pairs.append((a[2:], args[i + 1])); i += 2
            else:
                pairs.append((a, None)); i += 1
        if sys.argv[2] == "count":
            print(sum(1 for f, _ in pairs if f == "origin-api"))
            sys.exit(0)
        apis, flvs = sys.argv[2].split(","), sys.argv[3].split(",")
        local = {"edge-flv": f"http://127.0.0.1:{sys.argv[4]}", "edge-rtmp": f"127.0.0.1:{sys.argv[5]}",
                 "edge-api": f"http://127.0.0.1:{sys.argv[6]}", "edge-hls": f"http://127.0.0.1:{sys.argv[7]}",
                 "listen": f"127.0.0.1:{sys.argv[8]}"}
        seen = {"origin-api": 0, "origin-flv": 0}
        for f, v in pairs:
            if v is None:
                print(f); continue
            if f in seen:
                ports = apis if f == "origin-api" else flvs
                v = f"http://127.0.0.1:{ports[seen[f]]}"
                seen[f] += 1
            elif f in local:
                v = local[f]
            print(f"--{f}"); print(v)
        sys.exit(0)
print("no xiuload sidecar container in any Deployment", file=sys.stderr)
sys.exit(1)
EOF
}

# api_lists PORT STREAM -> 0 when xiu's API on PORT lists a publisher of live/STREAM
api_lists() {
  curl -s --max-time 2 "http://127.0.0.1:$1/api/query_whole_streams?top=100" 2>/dev/null \
    | grep -q "\"stream_name\":\"$2\""
}

# wait_api_lists PORT STREAM SECONDS
wait_api_lists() {
  local i
  for ((i = 0; i < $3 * 2; i++)); do api_lists "$1" "$2" && return 0; sleep 0.5; done
  return 1
}

# test_publish NAME URL SECONDS -> publishes a short test stream in the background (sets PUB_PID)
test_publish() {
  timeout $(($3 + 20)) ffmpeg -nostdin -hide_banner -loglevel error -re \
    -f lavfi -i testsrc=size=640x360:rate=25 -f lavfi -i sine \
    -c:v libx264 -preset veryfast -g 50 -c:a aac -t "$3" \
    -f flv "$2" >"$WORK/ffmpeg-$1.log" 2>&1 &
  PUB_PID=$!
  PIDS+=("$PUB_PID")
}

# refused LABEL API_PORT LOG STREAM URL -> 0 when xiu refused a publish of STREAM to URL: the publisher
# ends on its own, xiu logged an auth error for it and never listed the stream
refused() {
  local api=$2 log=$3 stream=$4 url=$5 i listed=0
  test_publish "$1-$stream" "$url" 4
  for ((i = 0; i < 40; i++)); do
    api_lists "$api" "$stream" && listed=1
    kill -0 "$PUB_PID" 2>/dev/null || break
    sleep 0.25
  done
  kill -INT "$PUB_PID" 2>/dev/null || true
  wait "$PUB_PID" 2>/dev/null || true
  ((listed == 0)) && grep -q "Auth error stream_name: $stream" "$log"
}

# flv_bytes PORT STREAM OUT -> 0 when 3 s of HTTP-FLV of live/STREAM start with an FLV header
flv_bytes() {
  curl -s --max-time 3 -o "$3" "http://127.0.0.1:$1/live/$2.flv" 2>/dev/null || true
  [[ -s $3 ]] && [[ $(head -c 3 "$3") == FLV ]]
}

# xiu_config_check LABEL RENDERED -> renders and runs origin + edge of one rendered overlay
xiu_config_check() {
  local label=$1 rendered=$2 dir=$WORK/xiu-$1
  mkdir -p "$dir"
  if ((XIU_OK == 0)); then fail "$label xiu-config" "xiu binary not found at $XIU_BIN"; return; fi
  local roles origin_cfg="" edge_cfg="" origin_sh="" edge_sh="" extra=""
  roles=$(extract_configs "$rendered" "$dir")
  while read -r role file ref script; do
    [[ -n $role ]] || continue
    if [[ $role == origin && -z $origin_cfg ]]; then origin_cfg=$file; origin_sh=$script
    elif [[ $role == edge && -z $edge_cfg ]]; then edge_cfg=$file; edge_sh=$script
    else extra+=" $ref"; fi
  done <<<"$roles"
  if [[ -z $origin_cfg || -z $edge_cfg || -n $extra ]]; then
    fail "$label xiu-config" "expected exactly one origin and one edge xiu config, got: $(echo "$roles" | awk '{print $1"="$3}' | xargs)"
    return
  fi
  if [[ $origin_sh == - || $edge_sh == - ]]; then
    fail "$label xiu-config" "origin and edge must both fill their config template in a render-config init container (origin: $origin_sh, edge: $edge_sh)"
    return
  fi
  # Tokens as an operator would make them (openssl rand -hex 32 gives 64 hex characters).
  local publish_token relay_token
  publish_token=publish$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
  relay_token=relay$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
  # The script must refuse what would break the RTMP query or the TOML string, and a short token.
  local bad
  for bad in '' 'short' 'abcdefgh&ijklmnopq' 'abcdefgh"ijklmnopq' 'abcdefgh|ijklmnopq' $'abcdefgh\nijklmnopq'; do
    if render_template "$edge_sh" "$bad" "$edge_cfg" "$dir/bad.toml"; then
      fail "$label xiu-config" "render-config accepted the token '$bad'"; return
    fi
  done
  mkdir -p "$dir/origin" "$dir/edge"
  if ! render_template "$origin_sh" "$publish_token" "$origin_cfg" "$dir/origin/rendered.toml" \
    || ! render_template "$edge_sh" "$relay_token" "$edge_cfg" "$dir/edge/rendered.toml"; then
    fail "$label xiu-config" "render-config failed: $(tail -2 "$WORK/render.err" | tr '\n' ' ')"; return
  fi
  local op oh of oa ep eh ef ea
  read -r op oh of oa ep eh ef ea <<<"$(free_ports 8)"
  rewrite_config "$dir/origin/rendered.toml" "$dir/origin/xiu.toml" "$op" "$oh" "$of" "$oa"
  rewrite_config "$dir/edge/rendered.toml" "$dir/edge/xiu.toml" "$ep" "$eh" "$ef" "$ea"

  local opid epid relay="" olog=$dir/origin/origin.log elog=$dir/edge/edge.log
  start_xiu origin "$dir/origin" "$dir/origin/xiu.toml"; opid=$XIU_PID
  # the origin runs no HLS (nobody can reach it there): its HLS port must stay closed
  if ! wait_listeners "$opid" "$oa" "$op" "$of"; then
    fail "$label xiu-config" "origin did not come up (API $oa, rtmp $op, flv $of): $(tail -3 "$olog" | tr '\n' ' ')"
    stop_xiu "$opid" || true; return
  fi
  start_xiu edge "$dir/edge" "$dir/edge/xiu.toml"; epid=$XIU_PID
  if ! wait_listeners "$epid" "$ea" "$ep" "$eh" "$ef"; then
    fail "$label xiu-config" "edge did not come up: $(tail -3 "$elog" | tr '\n' ' ')"
    stop_xiu "$epid" || true; stop_xiu "$opid" || true; return
  fi

  local why="" steps=()
  if tcp_open "$oh"; then why="origin listens on its HLS port $oh although its HLS is off"; fi
  # 1. strangers cannot publish to the origin
  if [[ -z $why ]]; then
    if refused "$label" "$oa" "$olog" stranger "rtmp://127.0.0.1:$op/live/stranger"; then steps+=("origin refuses a publisher without token")
    else why="origin did not refuse a publisher without the publish token"; fi
  fi
  # 2. a publisher with the token is taken and served over HTTP-FLV (what the relays pull)
  local fpid=""
  if [[ -z $why ]]; then
    test_publish check "rtmp://127.0.0.1:$op/live/check?token=$publish_token" 40; fpid=$PUB_PID
    if ! wait_api_lists "$oa" check 15; then why="origin never listed live/check published with the publish token"
    elif ! flv_bytes "$of" check "$dir/origin.flv"; then why="origin did not serve live/check over HTTP-FLV"
    else steps+=("origin takes the token and serves FLV"); fi
  fi
  # 3. edges refuse publishers: no token, and the users' publish token either
  if [[ -z $why ]]; then
    if ! refused "$label" "$ea" "$elog" stranger "rtmp://127.0.0.1:$ep/live/stranger"; then why="edge did not refuse a publisher without token"
    elif ! refused "$label" "$ea" "$elog" check "rtmp://127.0.0.1:$ep/live/check?token=$publish_token"; then why="edge took a publisher with the PUBLISH token (only the relay token may publish there)"
    else steps+=("edge refuses publishers without the relay token"); fi
  fi
  # 4. the relay: the real `xiuload sidecar` with the rendered arguments when the binary has the
  # relay (--origin-flv), on as many loopback origins as the render lists; else ffmpeg doing what
  # the sidecar does (origin HTTP-FLV -> edge RTMP with the relay token)
  local sc_bin=${XIULOAD_SIDECAR_BIN:-${XIULOAD_BIN:-}} scpid="" extra_pids=() extra_pubs=()
  if [[ -z $why ]] && [[ -n $sc_bin ]] && "$sc_bin" sidecar --help 2>/dev/null | grep -q -- '--origin-flv'; then
    local n i apis=$oa flvs=$of last_api=$oa last_rtmp=$op hp
    n=$(sidecar_args "$rendered" count)
    if ((n < 1 || n > 4)); then why="the rendered sidecar lists $n origins (checked here: 1 to 4)"; fi
    for ((i = 1; i < n && ${#why} == 0; i++)); do
      local xp xh xf xa
      read -r xp xh xf xa <<<"$(free_ports 4)"
      mkdir -p "$dir/origin$i"
      rewrite_config "$dir/origin/rendered.toml" "$dir/origin$i/xiu.toml" "$xp" "$xh" "$xf" "$xa"
      start_xiu "origin$i" "$dir/origin$i" "$dir/origin$i/xiu.toml"; extra_pids+=("$XIU_PID")
      if ! wait_listeners "$XIU_PID" "$xa" "$xp" "$xf"; then why="origin $i did not come up"; fi
      apis+=",$xa"; flvs+=",$xf"; last_api=$xa; last_rtmp=$xp
    done
    if [[ -z $why ]]; then
      # a second stream on the LAST origin: the sidecar must find it there
      if ((n > 1)); then
        test_publish last "rtmp://127.0.0.1:$last_rtmp/live/last?token=$publish_token" 40; extra_pubs+=("$PUB_PID")
        wait_api_lists "$last_api" last 15 || why="origin $((n - 1)) never listed live/last"
      fi
      hp=$(free_ports 1)
      local args=()
      mapfile -t args < <(sidecar_args "$rendered" "$apis" "$flvs" "$ef" "$ep" "$ea" "$eh" "$hp")
      XIU_RELAY_TOKEN=$relay_token "$sc_bin" sidecar "${args[@]}" >"$dir/sidecar.log" 2>&1 &
      scpid=$!
      PIDS+=("$scpid")
    fi
    local ready=0 streams="check"
    ((n > 1)) && streams+=" last"
    if [[ -z $why ]]; then
      local st
      for st in $streams; do
        wait_api_lists "$ea" "$st" 30 || why="${why:+$why; }the sidecar never relayed live/$st into the edge: $(tail -2 "$dir/sidecar.log" | tr '\n' ' ')"
      done
    fi
    if [[ -z $why ]]; then
      for ((i = 0; i < 60; i++)); do [[ $(http_code "http://127.0.0.1:$hp/readyz") == 200 ]] && { ready=1; break; }; sleep 0.5; done
      if ((ready == 0)); then why="sidecar /readyz never answered 200 with every origin stream relayed"
      elif ! wait_hls "$eh" 20 "${streams##* }"; then why="edge served no HLS playlist for the relayed live/${streams##* }"
      elif ! flv_bytes "$ef" check "$dir/edge.flv"; then why="edge served no HTTP-FLV of the relayed live/check"
      elif [[ $(http_code "http://127.0.0.1:$hp/drain" "" 20) != 200 ]]; then why="GET /drain (the pods' preStop) did not answer 200 on an edge without viewers"
      elif [[ $(http_code "http://127.0.0.1:$hp/readyz") == 200 ]]; then why="/readyz still 200 after /drain"
      else steps+=("the rendered xiuload sidecar relayed $(echo "$streams" | wc -w) stream(s) from $n origin(s): edge HLS + FLV served, /readyz 200, /drain 200 then /readyz false"); fi
    fi
  elif [[ -z $why ]]; then
    timeout 40 ffmpeg -nostdin -hide_banner -loglevel error -i "http://127.0.0.1:$of/live/check.flv" \
      -c copy -f flv "rtmp://127.0.0.1:$ep/live/check?token=$relay_token" >"$dir/relay.log" 2>&1 &
    relay=$!
    PIDS+=("$relay")
    if ! wait_api_lists "$ea" check 15; then why="edge never listed live/check relayed with the relay token: $(tail -2 "$dir/relay.log" | tr '\n' ' ')"
    elif ! wait_hls "$eh" 20; then why="edge took the relay but served no HLS playlist within 20 s"
    elif ! flv_bytes "$ef" check "$dir/edge.flv"; then why="edge took the relay but served no HTTP-FLV"
    else steps+=("relayed stream (ffmpeg standing in for a sidecar without --origin-flv) served by the edge as HLS and FLV ($(stat -c %s "$dir/edge.flv") FLV bytes in 3 s)"); fi
  fi
  [[ -n $scpid ]] && { kill -TERM "$scpid" 2>/dev/null || true; wait "$scpid" 2>/dev/null || true; }
  local xpid
  for xpid in "${extra_pubs[@]}"; do kill -INT "$xpid" 2>/dev/null || true; wait "$xpid" 2>/dev/null || true; done
  for xpid in "${extra_pids[@]}"; do stop_xiu "$xpid" || why="${why:+$why; }an extra origin did not exit within 5 s of SIGINT"; done
  if grep -q 'panicked' "$olog" "$elog"; then
    why="${why:+$why; }xiu panicked: $(grep -h -m1 'panicked' "$olog" "$elog" | head -1)"
  fi
  [[ -n $relay ]] && kill -INT "$relay" 2>/dev/null || true
  [[ -n $fpid ]] && kill -INT "$fpid" 2>/dev/null || true
  local stopped=1
  stop_xiu "$epid" || stopped=0
  stop_xiu "$opid" || stopped=0
  [[ -n $relay ]] && { wait "$relay" 2>/dev/null || true; }
  [[ -n $fpid ]] && { wait "$fpid" 2>/dev/null || true; }
  ((stopped)) || why="${why:+$why; }xiu did not exit within 5 s of SIGINT"
  if [[ -z $why ]]; then
    local IFS=';'
    pass "$label xiu-config" "render-config refuses bad tokens; ${steps[*]}; both exited on SIGINT"
  else fail "$label xiu-config" "$why"; fi
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

# lint_rules_in LINT_OUTPUT -> the distinct rule ids of its findings ("error[rule]" / "warning[rule]"), sorted
lint_rules_in() { { grep -oE '(error|warning)\[[a-z0-9-]+\]' "$1" || true; } | sed -E 's/.*\[(.*)\]/\1/' | sort -u | xargs; }

# The documentation ranges (RFC 5737) deploy/ uses as CIDR placeholders, and the private ranges an
# operator's values stand in for here: publishers, control plane, ALB/node subnets.
fill_placeholders() {
  sed -e 's|192\.0\.2\.0/24|10.20.0.0/24|g' -e 's|198\.51\.100\.0/24|10.21.0.0/24|g' \
    -e 's|203\.0\.113\.0/24|10.22.0.0/24|g' "$1"
}

# lint_expect LABEL FILE EXPECTED_RULES -> runs xiuload lint on FILE; passes when the distinct rule
# ids found are exactly EXPECTED_RULES (space-separated, sorted; "" = no finding and exit 0)
lint_expect() {
  local label=$1 file=$2 want=$3 out=$WORK/lint.$$ rc=0 rules
  timeout 60 "$XIULOAD_BIN" lint "$file" >"$out" 2>&1 || rc=$?
  rules=$(lint_rules_in "$out")
  if [[ -z $want ]] && ((rc == 0)) && [[ -z $rules ]]; then
    pass "$label" "xiuload lint: exit 0"
  elif [[ -n $want ]] && ((rc == 1)) && [[ $rules == "$want" ]]; then
    pass "$label" "xiuload lint flags exactly: $rules (expected, exit $rc)"
  else
    fail "$label" "expected ${want:-no finding}, got exit $rc, rules: ${rules:-none}: $(grep -E '(error|warning)\[' "$out" | head -4 | tr '\n' ' ')"
  fi
}

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
    # As shipped, the CIDRs are placeholders: lint must say so (and nothing else); with the
    # placeholders replaced, as an operator does, the overlay must be clean - except the demo's
    # 1 % memory target, kept on purpose and flagged with exactly hpa-target-too-low.
    extra=""
    [[ $ov == demo-memory-hpa ]] && extra=hpa-target-too-low
    lint_expect "$ov lint (as shipped)" "$rendered" "$(echo cidr-placeholder $extra | xargs -n1 | sort | xargs)"
    fill_placeholders "$rendered" >"$WORK/$ov.filled.yaml"
    lint_expect "$ov lint (CIDRs set)" "$WORK/$ov.filled.yaml" "$extra"
  elif want lint; then
    echo "SKIP $ov lint: XIULOAD_BIN is not set"
  fi

  if want xiu-config; then xiu_config_check "$ov" "$rendered"; fi

  fixture=$ROOT/tests/fixtures/clean/$ov.yaml
  if want fixtures && [[ $ov == prod || $ov == yandex-alb ]]; then
    fill_placeholders "$rendered" >"$WORK/$ov.fixture.yaml"
    if [[ ${DEPLOY_CHECKS_WRITE_FIXTURES:-0} == 1 ]]; then
      cp "$WORK/$ov.fixture.yaml" "$fixture"
      pass "$ov fixtures" "wrote ${fixture#"$ROOT"/}"
    elif cmp -s "$WORK/$ov.fixture.yaml" "$fixture"; then
      pass "$ov fixtures" "${fixture#"$ROOT"/} is the current render"
    else
      fail "$ov fixtures" "${fixture#"$ROOT"/} differs from the current render (DEPLOY_CHECKS_WRITE_FIXTURES=1 .ci/deploy-checks.sh fixtures rewrites it)"
    fi
  fi
done

# ------------------------------------------------------------------------------------------------
# the objects of a distributed run (xiuload render): what the coordinator creates in the cluster
# ------------------------------------------------------------------------------------------------
if want distributed && [[ -n ${XIULOAD_BIN:-} ]]; then
  log "distributed run objects (xiuload render scenarios/staging-distributed.toml)"
  drender=$WORK/distributed.yaml
  if ! "$XIULOAD_BIN" render "$ROOT/scenarios/staging-distributed.toml" --run-id staging-distributed-check \
    >"$drender" 2>"$WORK/distributed.err"; then
    fail "distributed render" "xiuload render failed: $(head -3 "$WORK/distributed.err" | tr '\n' ' ')"
  else
    dobj=$(grep -c '^kind:' "$drender" || true)
    if ! grep -q '^kind: Job' "$drender" || ! grep -q 'completionMode: Indexed' "$drender"; then
      fail "distributed render" "no Indexed Job in the render"
    else
      pass "distributed render" "$dobj objects (ConfigMap + Indexed Job)"
    fi
    if "$VENV/bin/kubernetes-validate" --strict --kubernetes-version "$K8S_VERSION" "$drender" >"$WORK/distributed.kv" 2>&1; then
      pass "distributed kubernetes-validate" "$(grep -c ' passed ' "$WORK/distributed.kv" || true)/$dobj objects valid (strict, $K8S_VERSION)"
    else
      fail "distributed kubernetes-validate" "$(grep -vE ' passed ' "$WORK/distributed.kv" | head -5 | tr '\n' ' ')"
    fi
    lint_expect "distributed lint" "$drender" ""
  fi
elif want distributed; then
  echo "SKIP distributed: XIULOAD_BIN is not set"
fi

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
