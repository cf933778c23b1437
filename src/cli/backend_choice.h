// Picks the compute backend for a CLI command: --backend cpu|cuda, default cuda when this build
// has it and a GPU is present, else cpu.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "backend/backend.h"
#include "pixtral/status.h"

namespace pixtral::cli {

Result<std::unique_ptr<backend::Backend>> make_backend(const std::optional<std::string>& name);

// Resolves --model: a checkpoint directory, or "demo" (the built-in tiny random model, made on
// first use in the cache directory; a line on stderr says its output is meaningless).
Result<std::string> resolve_model_dir(const std::string& model);

}  // namespace pixtral::cli
