#!/usr/bin/env bash
# Runs on the GPU machine, from the repository root, after scripts/gpu_bundle.sh made .bundle/:
# one run of each named cuda_bench phase under Nsight Compute (kernel durations only, no clock
# or cache control), summarized per kernel by bench/cuda/ncu_summary.py.
# Usage: bash scripts/gpu_profile.sh [decode1 decode1-32k decode64 mixed prefill vision]
set -uo pipefail
LOG_DIR=${OUT:-.bundle/out}
mkdir -p "$LOG_DIR"
CUBLAS_DIR=$(python3 -c "import nvidia.cublas as m, os; print(os.path.join(list(m.__path__)[0], 'lib'))" 2>/dev/null || true)
export LD_LIBRARY_PATH="$PWD/.bundle/lib:$CUBLAS_DIR:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
PHASES=${*:-decode1 decode1-32k decode64 mixed prefill vision}
for phase in $PHASES; do
  echo "=== profile $phase"
  timeout 300 "$NCU" --profile-from-start off --clock-control none --cache-control none \
    --metrics gpu__time_duration.sum --csv .bundle/bin/cuda_bench --profile "$phase" > "$LOG_DIR/ncu_$phase.csv" 2> "$LOG_DIR/ncu_$phase.err"
  echo "ncu rc=$?"
  python3 bench/cuda/ncu_summary.py "$LOG_DIR/ncu_$phase.csv" --top 30 | tee "$LOG_DIR/profile_$phase.txt"
done
