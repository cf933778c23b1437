#!/usr/bin/env bash
# Runs on the GPU machine, from the repository root, after scripts/gpu_bundle.sh made .bundle/:
# the serving-engine load runs of docs/PERFORMANCE.md (pixtral_load, random weights of the exact
# Pixtral-12B shape initialised on the device). Logs go to $OUT when it is set (else .bundle/out).
# Usage: bash scripts/gpu_load.sh [all|text|image|cache|n|long]
set -uo pipefail
source "$(dirname "$0")/gpu_env.sh"
LOAD=$BIN/pixtral_load
WHAT=${1:-all}
M=random:pixtral-12b

run() {  # name, timeout, flags...
  local name=$1 limit=$2
  shift 2
  echo "=== $name: pixtral_load $*"
  timeout "$limit" "$LOAD" --model $M --backend cuda "$@" > "$LOG_DIR/load_$name.log" 2>&1
  echo "$name rc=$?"
  grep -E "throughput|TTFT|TPOT|ITL|step|duration|Successful|Failed|prefix|encoder|cache|blocks|error|warning" \
    "$LOG_DIR/load_$name.log" | head -40
}

if [ "$WHAT" = all ] || [ "$WHAT" = text ]; then
  # 64 text requests at once, 512 in / 256 out (greedy; then seeded sampling with top-p/top-k).
  run text64 240 --num-requests 64 --prompt-len 512 --output-len 256 --max-num-seqs 64 \
    --max-num-batched-tokens 4096 --gpu-memory-utilization 0.9
  run text64_sampled 240 --num-requests 64 --prompt-len 512 --output-len 256 --max-num-seqs 64 \
    --max-num-batched-tokens 4096 --gpu-memory-utilization 0.9 --temperature 0.8 --top-p 0.95 --top-k 50
fi
if [ "$WHAT" = all ] || [ "$WHAT" = image ]; then
  # 32 in flight, each one distinct 1024x1024 image + 100 text tokens, 256 out. A 384-token budget
  # (the decodes count in it: chunks of about 353 tokens) and 3 encoder layers per step keep the
  # running streams' p99 inter-token latency within 2x a decode step while images are encoded and
  # prefilled (the maximum is not: docs/PERFORMANCE.md); 512 gives more requests/s with a longer
  # ITL tail.
  run image32 300 --num-requests 96 --concurrency 32 --prompt-len 100 --output-len 256 --image 1024,1024 \
    --distinct-images --max-num-seqs 32 --max-num-batched-tokens 384 --gpu-memory-utilization 0.9
fi
if [ "$WHAT" = all ] || [ "$WHAT" = cache ]; then
  # The same image in 10 requests: the encoder runs once (9 cache hits).
  run same_image10 120 --num-requests 10 --concurrency 10 --prompt-len 20 --output-len 16 --image 1024,1024 \
    --max-num-seqs 16 --kv-blocks 4000
  # A 2,000-token shared prefix: the second request's TTFT against the first's.
  run prefix2000 120 --num-requests 4 --concurrency 1 --prompt-len 2100 --shared-prefix 2000 --output-len 8 \
    --kv-blocks 4000
fi
if [ "$WHAT" = all ] || [ "$WHAT" = n ]; then
  # n > 1: 16 requests of 4 choices each (the prompt's blocks shared, computed once), sampled.
  run n4 180 --num-requests 16 --n 4 --prompt-len 512 --output-len 128 --max-num-seqs 64 \
    --max-num-batched-tokens 4096 --gpu-memory-utilization 0.9 --temperature 0.8 --top-p 0.95
fi
if [ "$WHAT" = all ] || [ "$WHAT" = long ]; then
  # 128k context: a 127,000-token prompt + 1,000 generated tokens on one sequence.
  run ctx128k 560 --num-requests 1 --prompt-len 127000 --output-len 1000 --max-num-seqs 1 \
    --max-num-batched-tokens 8192 --kv-blocks 8100
fi
