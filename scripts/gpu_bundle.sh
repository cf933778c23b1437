#!/usr/bin/env bash
# Builds the CUDA binaries (cuda-release settings) and gathers what a GPU machine without a build
# toolchain needs into .bundle/ (ignored by git): bin/ (stripped binaries), lib/ (shared libraries
# from ldd other than the C/C++ runtime and the CUDA driver/runtime/cuBLAS, which the GPU machine
# provides) and source_dir (where the binaries look for tests/data).
# Usage: scripts/gpu_bundle.sh            (BUILD_DIR=build/cuda-release by default, JOBS=2)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build/cuda-release}
JOBS=${JOBS:-2}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPIXTRAL_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90a
cmake --build "$BUILD_DIR" -j "$JOBS" --target cuda_conformance_test cuda_sample_test cuda_bench gemm_sweep
# The CLI is bundled when it builds; the CUDA tests and benchmark do not need it.
cmake --build "$BUILD_DIR" -j "$JOBS" --target pixtral pixtral_load || echo "gpu_bundle: pixtral/pixtral_load did not build; bundling without them" >&2

rm -rf .bundle && mkdir -p .bundle/bin .bundle/lib
for exe in tests/backend/cuda_conformance_test tests/backend/cuda_sample_test bench/cuda/cuda_bench bench/cuda/gemm_sweep src/cli/pixtral \
           bench/engine/pixtral_load; do
  [ -f "$BUILD_DIR/$exe" ] || continue
  cp "$BUILD_DIR/$exe" .bundle/bin/
  strip .bundle/bin/"$(basename "$exe")"
  ldd "$BUILD_DIR/$exe" | awk '$3 ~ /^\// {print $1, $3}' | while read -r name path; do
    case "$name" in
      libc.so*|libm.so*|libstdc++.so*|libgcc_s.so*|ld-linux*|libdl.so*|libpthread.so*|librt.so*) ;;
      libcuda.so*|libcublas*|libcudart*) ;;
      *) cp -L "$path" .bundle/lib/ ;;
    esac
  done
done
grep -m1 '^CMAKE_HOME_DIRECTORY' "$BUILD_DIR/CMakeCache.txt" | cut -d= -f2 > .bundle/source_dir
cp scripts/gpu_run.sh scripts/gpu_env.sh .bundle/
du -sh .bundle
ls -l .bundle/bin .bundle/lib
