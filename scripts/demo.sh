#!/usr/bin/env bash
# Quick start, command 1: install what is needed, build, and run the built-in demo model.
# The demo model has random weights: its output is meaningless, it shows the whole path running.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh release
exec build/release/src/cli/pixtral generate --model demo --prompt "Hello, Pixtral" --max-tokens 16 "$@"
