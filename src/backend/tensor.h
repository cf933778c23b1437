// Tensor: a typed, shaped view of backend memory (device memory for CUDA, host memory for CPU).
// Row-major, contiguous, outermost dimension first. A Tensor does not own its memory; TensorBuffer
// (backend.h) does.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "base/check.h"
#include "base/dtype.h"

namespace pixtral::backend {

using base::DType;

constexpr int kMaxRank = 4;

struct Shape {
  std::array<int64_t, kMaxRank> dims{};
  int rank = 0;

  Shape() = default;
  Shape(std::initializer_list<int64_t> d) {
    PX_CHECK(d.size() <= kMaxRank);
    for (int64_t v : d) dims[rank++] = v;
  }
  int64_t operator[](int i) const { return dims[i]; }
  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < rank; ++i) n *= dims[i];
    return n;
  }
  bool operator==(const Shape& o) const {
    if (rank != o.rank) return false;
    for (int i = 0; i < rank; ++i)
      if (dims[i] != o.dims[i]) return false;
    return true;
  }
  std::string to_string() const;  // "[4, 5]"
};

struct Tensor {
  void* data = nullptr;
  DType dtype = DType::kF32;
  Shape shape;

  int64_t numel() const { return shape.numel(); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * base::dtype_size(dtype); }
  int64_t dim(int i) const { return shape[i]; }
  bool empty() const { return data == nullptr; }

  template <typename T>
  T* as() const { return static_cast<T*>(data); }

  // Rows [begin, end) of dimension 0, as a view.
  Tensor rows(int64_t begin, int64_t end) const;
  // The same memory seen with another shape of the same element count.
  Tensor reshape(Shape new_shape) const;
};

}  // namespace pixtral::backend
