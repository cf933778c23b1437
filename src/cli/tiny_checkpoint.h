// Writes a random-weight Pixtral checkpoint of any (small) size in either layout, with a
// byte-level tekken.json (the 256 single bytes + 1000 special-token slots, ids per
// spec/inputs.md §1.4): `pixtral make-tiny` and the built-in demo model.
#pragma once

#include <cstdint>
#include <string>

#include "pixtral/status.h"

namespace pixtral::cli {

struct TinyModelOptions {
  std::string layout = "mistral";  // mistral | hf
  std::string dtype = "bf16";      // bf16 | f16 | f32
  uint64_t seed = 0;
  // Decoder. vocab is the tokenizer's: 1000 specials + 256 bytes.
  int64_t dim = 64, layers = 2, heads = 4, kv_heads = 2, head_dim = 16, ffn = 128;
  double rope_theta = 1e9;
  // Vision (vision_layers = 0: a text-only model).
  int64_t vision_dim = 32, vision_layers = 2, vision_heads = 2, vision_ffn = 64;
  int64_t patch_size = 16, image_size = 1024;
  // Zero the output rows of the special-token slots other than BOS/EOS, so that sampling picks
  // byte tokens and the demo's (meaningless) text is visible instead of dropped control ids.
  bool visible_output = false;
};

// Creates `dir` and writes params.json or config.json, the safetensors file and tekken.json.
Status write_tiny_checkpoint(const std::string& dir, const TinyModelOptions& options);

}  // namespace pixtral::cli
