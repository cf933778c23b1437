#!/usr/bin/env bash
# Runs on the GPU machine, from the repository root, after scripts/gpu_bundle.sh made .bundle/:
# the CUDA conformance tests, the benchmark, then a compute-sanitizer memcheck pass over a subset.
# Logs go to $OUT when it is set (else .bundle/out). cuBLASLt comes from the machine: the CUDA
# toolkit's lib64, or the nvidia-cublas wheel of its Python environment.
set -uo pipefail
source "$(dirname "$0")/gpu_env.sh"
echo "cublasLt from: $CUBLAS_DIR"

nvidia-smi 2>&1 | tee "$LOG_DIR/nvidia-smi.log"
echo "=== conformance" && timeout 400 "$BIN/cuda_conformance_test" 2>&1 | tee "$LOG_DIR/conformance.log"
echo "conformance rc=${PIPESTATUS[0]}"
echo "=== sample" && timeout 120 "$BIN/cuda_sample_test" 2>&1 | tee "$LOG_DIR/sample.log"; echo "sample rc=${PIPESTATUS[0]}"
echo "=== bench" && timeout 300 "$BIN/cuda_bench" 2>&1 | tee "$LOG_DIR/bench.log"
echo "bench rc=${PIPESTATUS[0]}"
SUBSET='CudaConformance.NormMatmulFused:CudaConformance.QkvRopeFused:CudaConformance.Matmul:CudaConformance.KvWrite:CudaConformance.EmbeddingScatterGather:CudaConformance.Patchify:CudaConformance.Rope1dAnd2d:CudaAttention.VarlenSegments:CudaAttention.PagedChunkAfterContext:Goldens/CudaGolden.*/gqa_f32_one_image:CudaDecodeRunner.*:CudaAttention.PagedDecodeRowsAndChunksInTwoCalls:CudaAttention.PagedDecodeGraphReplay'
echo "=== memcheck" && timeout 300 compute-sanitizer --tool memcheck --error-exitcode 3 \
  "$BIN/cuda_conformance_test" --gtest_filter="$SUBSET" 2>&1 | tail -40 | tee "$LOG_DIR/memcheck.log"
echo "memcheck rc=${PIPESTATUS[0]}"
