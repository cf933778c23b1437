// pixtral preprocess --image FILE --out OUT.safetensors [--patch-size 16] [--max-image-size 1024]
//   Decodes FILE, computes its token grid and writes `pixels` F32 [3, H, W] (mistral_common's
//   ImageEncoder pixels, H = 16*rows, W = 16*cols) to OUT. Prints the grid and the token count.
//   ref: spec/inputs.md §4, §5; spec/model.md §3
#include <cstdio>
#include <string>

#include "cli/command.h"
#include "image/image.h"
#include "io/safetensors.h"

namespace pixtral::cli {
namespace {

std::optional<int64_t> parse_positive(const std::optional<std::string>& text, int64_t fallback) {
  if (!text) return fallback;
  try {
    size_t used = 0;
    const long long v = std::stoll(*text, &used);
    if (used != text->size() || v <= 0) return std::nullopt;
    return v;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

int run_preprocess(const Args& args) {
  FlagReader flags(args);
  const auto image_path = flags.value("--image"), out = flags.value("--out");
  const auto patch = parse_positive(flags.value("--patch-size"), 16);
  const auto max_size = parse_positive(flags.value("--max-image-size"), 1024);
  if (auto err = flags.finish(); !err.empty()) return usage_error("preprocess", err);
  if (!image_path || !out) return usage_error("preprocess", "--image and --out are required");
  if (!patch || !max_size) return usage_error("preprocess", "--patch-size and --max-image-size must be positive integers");

  auto rgb = image::load_image_file(*image_path);
  if (!rgb.is_ok()) return failure("preprocess", rgb.status().to_string());
  const image::ImageGeometry geometry{*patch, *max_size};
  auto grid = image::patch_grid(rgb->width, rgb->height, geometry);
  if (!grid.is_ok()) return failure("preprocess", grid.status().to_string());
  auto pixels = image::preprocess(*rgb, geometry);
  if (!pixels.is_ok()) return failure("preprocess", pixels.status().to_string());

  io::SafetensorsWriter writer;
  writer.add_f32("pixels", {3, pixels->height, pixels->width}, pixels->data.data());
  writer.set_metadata("grid", std::to_string(grid->rows) + "x" + std::to_string(grid->cols));
  if (Status s = writer.write(*out); !s.is_ok()) return failure("preprocess", s.to_string());
  // [IMG] per patch, [IMG_BREAK] after each row but the last, [IMG_END]. ref: spec/inputs.md §4
  std::printf("image %lldx%lld -> grid %lld rows x %lld cols (%lld tokens), pixels [3, %lld, %lld] -> %s\n",
              static_cast<long long>(rgb->width), static_cast<long long>(rgb->height),
              static_cast<long long>(grid->rows), static_cast<long long>(grid->cols),
              static_cast<long long>((grid->cols + 1) * grid->rows), static_cast<long long>(pixels->height),
              static_cast<long long>(pixels->width), out->c_str());
  return 0;
}

}  // namespace

PX_REGISTER_COMMAND(preprocess, "decode an image and write its normalized pixel tensor (safetensors)", run_preprocess);

}  // namespace pixtral::cli
