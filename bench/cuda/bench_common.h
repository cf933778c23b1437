// Shared by cuda_bench's parts: the H100 ceilings every figure is printed against
// (perf/targets.md), the median timing loop, and backends made with a PIXTRAL_CUDA_* switch set.
#pragma once

#include <functional>
#include <memory>

#include "backend/backend.h"

namespace pixtral::bench {

constexpr double kBandwidth = 3.03e12;  // bytes/s, measured device read
constexpr double kBf16Flops = 789e12;   // flop/s, bf16 GEMM 8192³

// Median seconds of `reps` runs of fn (each followed by a synchronize) after `warmup` runs.
double median_seconds(backend::Backend& b, int warmup, int reps, const std::function<void()>& fn);

// A backend made with `name` = `value` in the environment (the switch is read at construction).
std::unique_ptr<backend::Backend> backend_with_env(const char* name, const char* value);

}  // namespace pixtral::bench
