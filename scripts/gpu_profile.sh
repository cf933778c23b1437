#!/usr/bin/env bash
# Runs on the GPU machine, from the repository root, after scripts/gpu_bundle.sh made .bundle/:
# one run of each named cuda_bench phase under Nsight Compute (kernel durations only, no clock
# or cache control), summarized per kernel by bench/cuda/ncu_summary.py.
# Usage: bash scripts/gpu_profile.sh [decode1 decode1-32k decode64 mixed prefill vision]
set -uo pipefail
source "$(dirname "$0")/gpu_env.sh"
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
PHASES=${*:-decode1 decode1-32k decode64 mixed prefill vision}
for phase in $PHASES; do
  echo "=== profile $phase"
  timeout 300 "$NCU" --profile-from-start off --clock-control none --cache-control none \
    --metrics gpu__time_duration.sum --csv "$BIN/cuda_bench" --profile "$phase" > "$LOG_DIR/ncu_$phase.csv" 2> "$LOG_DIR/ncu_$phase.err"
  echo "ncu rc=$?"
  python3 bench/cuda/ncu_summary.py "$LOG_DIR/ncu_$phase.csv" --top 30 | tee "$LOG_DIR/profile_$phase.txt"
done
