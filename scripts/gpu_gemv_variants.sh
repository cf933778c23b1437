#!/usr/bin/env bash
# Runs on the GPU machine, from the repository root, after scripts/gpu_bundle.sh made .bundle/:
# the GEMV streaming variants (PIXTRAL_CUDA_GEMV_UNROLL / _PIPE / _STAGES / _WARP / _GRID / _EVICT,
# docs/cuda.md) side by side: their conformance tests, the M=1 rate of every variant per matrix
# (cuda_bench --gemv-ops), then the batch-1 decode graph at 512 and 32768 context once per
# variant (cuda_bench --decode-graph); "sanitize" runs compute-sanitizer's memcheck, racecheck and
# synccheck over the variants' conformance test. Logs go to $OUT when it is set (else .bundle/out).
# Usage: bash scripts/gpu_gemv_variants.sh [tests|ops|decode|sanitize]...   (default: the first
# three, a few minutes; sanitize separately)
set -uo pipefail
source "$(dirname "$0")/gpu_env.sh"
PARTS=${*:-tests ops decode}

# One setting per line: the environment of one whole-token run ("" = the defaults).
VARIANTS=(
  ""
  "PIXTRAL_CUDA_GEMV_UNROLL=8"
  "PIXTRAL_CUDA_GEMV_GRID=full"
  "PIXTRAL_CUDA_GEMV_PIPE=1"
  "PIXTRAL_CUDA_GEMV_PIPE=1 PIXTRAL_CUDA_GEMV_STAGES=4"
  "PIXTRAL_CUDA_GEMV_PIPE=2"
  "PIXTRAL_CUDA_GEMV_PIPE=2 PIXTRAL_CUDA_GEMV_STAGES=2"
  "PIXTRAL_CUDA_GEMV_PIPE=2 PIXTRAL_CUDA_GEMV_STAGES=4"
  "PIXTRAL_CUDA_GEMV_PIPE=2 PIXTRAL_CUDA_GEMV_UNROLL=8"
  "PIXTRAL_CUDA_GEMV_PIPE=2 PIXTRAL_CUDA_GEMV_EVICT=1"
  "PIXTRAL_CUDA_GEMV_PIPE=2 PIXTRAL_CUDA_GEMV_GRID=full"
  "PIXTRAL_CUDA_GEMV_WARP=1"
  "PIXTRAL_CUDA_GEMV_WARP=1 PIXTRAL_CUDA_GEMV_STAGES=2"
  "PIXTRAL_CUDA_GEMV_WARP=1 PIXTRAL_CUDA_GEMV_STAGES=4"
  "PIXTRAL_CUDA_GEMV_WARP=1 PIXTRAL_CUDA_GEMV_UNROLL=8"
  "PIXTRAL_CUDA_GEMV_WARP=1 PIXTRAL_CUDA_GEMV_EVICT=1"
)

for part in $PARTS; do
  case "$part" in
    tests)
      echo "=== GEMV conformance"
      timeout 300 "$BIN/cuda_conformance_test" \
        --gtest_filter='CudaGemv.*:CudaConformance.Matmul*:CudaConformance.NormMatmulFused:CudaConformance.QkvRopeFused' \
        2>&1 | tail -60 | tee "$LOG_DIR/gemv_conformance.log"
      echo "gemv conformance rc=${PIPESTATUS[0]}" ;;
    ops)
      echo "=== GEMV variants, M=1 per matrix"
      timeout 240 "$BIN/cuda_bench" --gemv-ops 2>&1 | tee "$LOG_DIR/gemv_ops.log"
      echo "gemv ops rc=${PIPESTATUS[0]}" ;;
    decode)
      echo "=== decode graph per GEMV variant"
      for v in "${VARIANTS[@]}"; do
        # shellcheck disable=SC2086  # v holds NAME=value words
        timeout 60 env $v "$BIN/cuda_bench" --decode-graph 2>&1 | tee -a "$LOG_DIR/gemv_decode.log"
      done ;;
    sanitize)  # shared-memory races (the rings), barrier misuse (named barriers), bad accesses
      for tool in memcheck racecheck synccheck; do
        echo "=== $tool over CudaGemv.VariantsMatchCpu"
        timeout 180 compute-sanitizer --tool "$tool" --error-exitcode 3 "$BIN/cuda_conformance_test" \
          --gtest_filter='CudaGemv.VariantsMatchCpu' 2>&1 | tail -30 | tee "$LOG_DIR/gemv_$tool.log"
        echo "$tool rc=${PIPESTATUS[0]}"
      done ;;
    *) echo "gpu_gemv_variants: unknown part '$part' (tests, ops, decode, sanitize)" >&2; exit 2 ;;
  esac
done
