#include "cli/backend_choice.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "backend/cpu/cpu_backend.h"
#include "cli/tiny_checkpoint.h"
#if PIXTRAL_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

namespace pixtral::cli {

Result<std::unique_ptr<backend::Backend>> make_backend(const std::optional<std::string>& name) {
  const std::string choice = name.value_or("auto");
  if (choice == "cpu") return backend::make_cpu_backend();
#if PIXTRAL_HAVE_CUDA
  if (choice == "cuda") return backend::make_cuda_backend(0);
  if (choice == "auto") {
    if (backend::cuda_device_count() > 0) return backend::make_cuda_backend(0);
    return backend::make_cpu_backend();
  }
#else
  if (choice == "cuda") return unimplemented("--backend cuda: this build has no CUDA backend (build the cuda-release preset)");
  if (choice == "auto") return backend::make_cpu_backend();
#endif
  return invalid_argument("--backend: unknown backend '" + choice + "' (expected cpu or cuda)");
}

Result<std::string> resolve_model_dir(const std::string& model) {
  if (model != "demo") {
    if (!std::filesystem::is_directory(model)) return not_found("--model: '" + model + "' is not a directory");
    return model;
  }
  std::filesystem::path cache;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) {
    cache = xdg;
  } else if (const char* home = std::getenv("HOME"); home && *home) {
    cache = std::filesystem::path(home) / ".cache";
  } else {
    cache = std::filesystem::temp_directory_path();
  }
  const auto dir = cache / "pixtral" / "demo-v2";
  std::fprintf(stderr, "pixtral: using the built-in demo model (random weights: its output is meaningless) at %s\n",
               dir.c_str());
  if (!std::filesystem::exists(dir / "params.json")) {
    TinyModelOptions options;  // defaults: the demo size, mistral layout, bf16
    options.visible_output = true;
    PX_RETURN_IF_ERROR(write_tiny_checkpoint(dir.string(), options));
  }
  return dir.string();
}

}  // namespace pixtral::cli
