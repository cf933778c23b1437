// pixtral make-tiny --out DIR [--layout mistral|hf] [--dtype bf16|f16|f32] [--seed N] [size flags]
#include <cstdio>

#include "cli/command.h"
#include "cli/tiny_checkpoint.h"

namespace pixtral::cli {
namespace {

int run_make_tiny(const Args& args) {
  FlagReader flags(args);
  TinyModelOptions o;
  const auto out = flags.value("--out");
  if (auto v = flags.value("--layout")) o.layout = *v;
  if (auto v = flags.value("--dtype")) o.dtype = *v;
  struct IntFlag {
    const char* name;
    int64_t* target;
  };
  int64_t seed = 0;
  const IntFlag ints[] = {{"--seed", &seed}, {"--dim", &o.dim}, {"--layers", &o.layers}, {"--heads", &o.heads},
                          {"--kv-heads", &o.kv_heads}, {"--head-dim", &o.head_dim}, {"--ffn", &o.ffn},
                          {"--vision-dim", &o.vision_dim}, {"--vision-layers", &o.vision_layers},
                          {"--vision-heads", &o.vision_heads}, {"--vision-ffn", &o.vision_ffn},
                          {"--patch-size", &o.patch_size}, {"--image-size", &o.image_size}};
  for (const auto& f : ints) {
    if (auto v = flags.value(f.name)) {
      auto parsed = parse_int(*v);
      if (!parsed || *parsed < 0) return usage_error("make-tiny", std::string(f.name) + ": not a non-negative integer: " + *v);
      *f.target = *parsed;
    }
  }
  o.seed = static_cast<uint64_t>(seed);
  if (auto err = flags.finish(); !err.empty()) return usage_error("make-tiny", err);
  if (!out) return usage_error("make-tiny", "--out DIR is required");
  if (Status s = write_tiny_checkpoint(*out, o); !s.is_ok()) return failure("make-tiny", s.to_string());
  std::printf("wrote a random-weight %s-layout %s checkpoint to %s (its outputs are meaningless)\n",
              o.layout.c_str(), o.dtype.c_str(), out->c_str());
  return 0;
}

}  // namespace

PX_REGISTER_COMMAND(make_tiny, "write a tiny random-weight checkpoint (tests, demos)", run_make_tiny);

}  // namespace pixtral::cli
