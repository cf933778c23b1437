#!/usr/bin/env bash
# Runs on the GPU machine, from the repository root, after scripts/gpu_bundle.sh made .bundle/:
# the CUDA conformance tests, the benchmark, then a compute-sanitizer memcheck pass over a subset.
# Logs go to $OUT when it is set (else .bundle/out). cuBLASLt comes from the machine: the CUDA
# toolkit's lib64, or the nvidia-cublas wheel of its Python environment.
set -uo pipefail
LOG_DIR=${OUT:-.bundle/out}
mkdir -p "$LOG_DIR"
CUBLAS_DIR=$(python3 -c "import nvidia.cublas as m, os; print(os.path.join(list(m.__path__)[0], 'lib'))" 2>/dev/null || true)
if [ -z "$CUBLAS_DIR" ] || [ ! -e "$CUBLAS_DIR/libcublasLt.so.13" ]; then
  CUBLAS_DIR=$(dirname "$(find / -name 'libcublasLt.so.13' -not -path '*/proc/*' 2>/dev/null | head -1)")
fi
export LD_LIBRARY_PATH="$PWD/.bundle/lib:$CUBLAS_DIR:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
echo "cublasLt from: $CUBLAS_DIR"
# The binaries read tests/data under the source directory they were configured in.
SRC=$(cat .bundle/source_dir)
if [ ! -e "$SRC/tests/data" ]; then mkdir -p "$SRC" && ln -sfn "$PWD/tests" "$SRC/tests"; fi

nvidia-smi 2>&1 | tee "$LOG_DIR/nvidia-smi.log"
BIN=.bundle/bin
echo "=== conformance" && timeout 400 "$BIN/cuda_conformance_test" 2>&1 | tee "$LOG_DIR/conformance.log"
echo "conformance rc=${PIPESTATUS[0]}"
echo "=== sample" && timeout 120 "$BIN/cuda_sample_test" 2>&1 | tee "$LOG_DIR/sample.log"; echo "sample rc=${PIPESTATUS[0]}"
echo "=== bench" && timeout 300 "$BIN/cuda_bench" 2>&1 | tee "$LOG_DIR/bench.log"
echo "bench rc=${PIPESTATUS[0]}"
SUBSET='CudaConformance.NormMatmulFused:CudaConformance.QkvRopeFused:CudaConformance.Matmul:CudaConformance.KvWrite:CudaConformance.EmbeddingScatterGather:CudaConformance.Patchify:CudaConformance.Rope1dAnd2d:CudaAttention.VarlenSegments:CudaAttention.PagedChunkAfterContext:Goldens/CudaGolden.*/gqa_f32_one_image:CudaDecodeRunner.*:CudaAttention.PagedDecodeRowsAndChunksInTwoCalls:CudaAttention.PagedDecodeGraphReplay'
echo "=== memcheck" && timeout 300 compute-sanitizer --tool memcheck --error-exitcode 3 \
  "$BIN/cuda_conformance_test" --gtest_filter="$SUBSET" 2>&1 | tail -40 | tee "$LOG_DIR/memcheck.log"
echo "memcheck rc=${PIPESTATUS[0]}"
