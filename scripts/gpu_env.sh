# Sourced by the GPU-machine scripts (gpu_run.sh, gpu_load.sh, gpu_profile.sh,
# gpu_gemv_variants.sh), from the repository root after scripts/gpu_bundle.sh made .bundle/:
# LOG_DIR ($OUT when set, else .bundle/out), BIN (.bundle/bin), LD_LIBRARY_PATH with the bundled
# libraries and cuBLASLt from the machine (the CUDA toolkit's lib64, or the nvidia-cublas wheel of
# its Python environment), and tests/data where the binaries look for it (the source directory
# they were configured in).
LOG_DIR=${OUT:-.bundle/out}
mkdir -p "$LOG_DIR"
BIN=.bundle/bin
CUBLAS_DIR=$(python3 -c "import nvidia.cublas as m, os; print(os.path.join(list(m.__path__)[0], 'lib'))" 2>/dev/null || true)
if [ -z "$CUBLAS_DIR" ] || [ ! -e "$CUBLAS_DIR/libcublasLt.so.13" ]; then
  CUBLAS_DIR=$(dirname "$(find / -name 'libcublasLt.so.13' -not -path '*/proc/*' 2>/dev/null | head -1)")
fi
export LD_LIBRARY_PATH="$PWD/.bundle/lib:$CUBLAS_DIR:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
SRC=$(cat .bundle/source_dir)
if [ ! -e "$SRC/tests/data" ]; then mkdir -p "$SRC" && ln -sfn "$PWD/tests" "$SRC/tests"; fi
