#!/usr/bin/env bash
# Quick start, command 2: install what is needed, build, and run the whole test suite.
# Usage: scripts/test.sh [PRESET]   (release by default; asan-ubsan for the sanitizer run)
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-release}"
scripts/setup.sh
scripts/build.sh "$preset"
ctest --preset "$preset" -j "$(nproc)" --timeout 900
