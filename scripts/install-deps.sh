#!/usr/bin/env bash
# Installs what xiuload's runs and tests need on a fresh Debian machine (run as root), skipping
# whatever is already there:
#   - system packages: ffmpeg (independent media check), libopus-dev + cmake + pkg-config (to build
#     xiu), chromium (HTML report screenshots), nginx + libnginx-mod-rtmp (a second media server
#     for tests/nginx.rs), haproxy (the L4 balancer in front of several local origins);
#   - xiu 0.14.0, built once with cargo into a cache that survives between runs (scripts/install-xiu.sh);
#   - Python tools for the deploy checks (kubernetes-validate, checkov) in a cached venv.
# Usage: scripts/install-deps.sh [--no-python]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

want_python=1
[ "${1:-}" = "--no-python" ] && want_python=0

missing=()
command -v ffmpeg >/dev/null || missing+=(ffmpeg)
command -v ffprobe >/dev/null || missing+=(ffmpeg)
command -v pkg-config >/dev/null || missing+=(pkg-config)
command -v cmake >/dev/null || missing+=(cmake)
dpkg -s libopus-dev >/dev/null 2>&1 || missing+=(libopus-dev)
command -v chromium >/dev/null || missing+=(chromium)
command -v make >/dev/null || missing+=(make)
command -v perl >/dev/null || missing+=(perl)
dpkg -s nginx >/dev/null 2>&1 || missing+=(nginx)
dpkg -s libnginx-mod-rtmp >/dev/null 2>&1 || missing+=(libnginx-mod-rtmp)
command -v haproxy >/dev/null || missing+=(haproxy)
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

"$here/install-xiu.sh"

if [ "$want_python" = 1 ]; then
  cache="${XIULOAD_CACHE:-$HOME/.cache/xiuload}"
  venv="$cache/venv"
  if [ ! -x "$venv/bin/kubernetes-validate" ] || [ ! -x "$venv/bin/checkov" ]; then
    echo "install-deps: creating $venv with kubernetes-validate and checkov"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip
    "$venv/bin/pip" install -q -r "$here/requirements-deploy.txt"
  fi
fi
echo "install-deps: ok"
