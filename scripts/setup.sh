#!/usr/bin/env bash
# Installs everything pixtral.cpp needs to build and test on Debian 12 (run as root, or with sudo
# available): compilers and libraries from apt, and a Python venv (.venv) with the reference
# implementations the differential tests compare against. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ninja-build pkg-config git python3 python3-venv python3-pip
  libgtest-dev libgmock-dev libbenchmark-dev
  libopenblas-dev nlohmann-json3-dev libpcre2-dev
  libjpeg62-turbo-dev libpng-dev libwebp-dev libgif-dev libopencv-imgproc-dev
  libxxhash-dev libcpp-httplib-dev
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Test venv: reference implementations for the differential tests (no torch here; tools/ has its own).
if [ ! -x .venv/bin/python ] || ! cmp -s tools/requirements-test.txt .venv/.requirements 2>/dev/null; then
  echo "setup: creating .venv from tools/requirements-test.txt"
  python3 -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r tools/requirements-test.txt
  cp tools/requirements-test.txt .venv/.requirements
fi
echo "setup: done"
