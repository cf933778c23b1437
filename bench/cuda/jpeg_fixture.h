// A deterministic photo-like JPEG for benchmarks that start from encoded bytes: smooth colour
// gradients with fine texture and a little noise (so the entropy-coded size is that of a real
// photo, not of a flat image), baseline 4:2:0, encoded in memory with libjpeg.
#pragma once

#include <cstdint>
#include <vector>

namespace pixtral::bench {

// [width × height] RGB encoded at `quality` (1–100). Aborts on an encoder failure.
std::vector<uint8_t> photo_like_jpeg(int width, int height, int quality);

}  // namespace pixtral::bench
