// Loads a checkpoint directory's weights onto a backend (either layout), or fills them with
// seeded random values of the right shapes (benchmarks without files).
#pragma once

#include <cstdint>
#include <string>

#include "backend/backend.h"
#include "io/weight_map.h"
#include "model/weights.h"

namespace pixtral::model {

// Binds and uploads every tensor of `dir`; errors name the file and tensor.
Result<PixtralWeights> load_weights(const std::string& dir, const io::ModelConfig& config,
                                    backend::Backend& backend);

// Random weights: normal(0, 1/sqrt(fan_in)) matrices, norms 1 + small noise, seeded.
PixtralWeights random_weights(const io::ModelConfig& config, backend::Backend& backend, uint64_t seed);

}  // namespace pixtral::model
