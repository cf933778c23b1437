#include "backend/tensor.h"

namespace pixtral::backend {

std::string Shape::to_string() const {
  std::string s = "[";
  for (int i = 0; i < rank; ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

Tensor Tensor::rows(int64_t begin, int64_t end) const {
  PX_CHECK(shape.rank >= 1 && begin >= 0 && begin <= end && end <= shape[0]);
  const int64_t row_elems = shape[0] == 0 ? 0 : numel() / shape[0];
  Tensor t = *this;
  t.shape.dims[0] = end - begin;
  t.data = static_cast<char*>(data) + static_cast<size_t>(begin * row_elems) * base::dtype_size(dtype);
  return t;
}

Tensor Tensor::reshape(Shape new_shape) const {
  PX_CHECK_MSG(new_shape.numel() == numel(), "reshape must keep the element count");
  Tensor t = *this;
  t.shape = new_shape;
  return t;
}

}  // namespace pixtral::backend
