#include "backend/backend.h"

namespace pixtral::backend {

TensorBuffer::~TensorBuffer() {
  if (backend_ != nullptr && !tensor_.empty()) backend_->free(tensor_);
}

TensorBuffer& TensorBuffer::operator=(TensorBuffer&& o) noexcept {
  if (this != &o) {
    if (backend_ != nullptr && !tensor_.empty()) backend_->free(tensor_);
    backend_ = o.backend_;
    tensor_ = o.tensor_;
    o.tensor_ = {};
  }
  return *this;
}

}  // namespace pixtral::backend
