// Element types and the scalar conversions every layer shares (bf16/f16 <-> f32).
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace pixtral::base {

enum class DType : uint8_t { kF32, kF16, kBF16, kF64, kI64, kI32, kI16, kI8, kU8, kBool, kF8E4M3 };

// Bytes per element.
size_t dtype_size(DType dtype);
// safetensors spelling: "F32", "BF16", ...
std::string_view dtype_name(DType dtype);
std::optional<DType> dtype_from_name(std::string_view name);

// bf16: the upper half of an IEEE float; rounding to nearest even (NaN stays NaN).
inline float bf16_to_f32(uint16_t bits) {
  uint32_t u = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
// Rounds a float through bf16 and back (what storing an activation in bf16 does).
inline float round_bf16(float f) { return bf16_to_f32(f32_to_bf16(f)); }

// IEEE binary16.
float f16_to_f32(uint16_t bits);
uint16_t f32_to_f16(float f);

// Converts n elements of `src` (dtype) to float. Only floating dtypes; returns false otherwise.
bool convert_to_f32(DType dtype, const void* src, float* dst, size_t n);

// A standard normal value from a counter-based generator: the same (seed, index) gives the same
// value on every backend (splitmix64 -> two uniforms -> Box-Muller). Used for random weights.
inline uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
float counter_normal(uint64_t seed, uint64_t index);

}  // namespace pixtral::base
