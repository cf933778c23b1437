#include "pixtral/status.h"

#include <cstdio>

#include "base/check.h"

namespace pixtral {

const char* status_code_name(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "ok";
    case StatusCode::kInvalidArgument: return "invalid argument";
    case StatusCode::kNotFound: return "not found";
    case StatusCode::kUnimplemented: return "unimplemented";
    case StatusCode::kOutOfRange: return "out of range";
    case StatusCode::kResourceExhausted: return "resource exhausted";
    case StatusCode::kIoError: return "i/o error";
    case StatusCode::kInternal: return "internal error";
    case StatusCode::kCancelled: return "cancelled";
  }
  return "unknown";
}

std::string Status::to_string() const {
  if (is_ok()) return "ok";
  return std::string(status_code_name(code_)) + ": " + message_;
}

namespace base {
void check_failed(const char* file, int line, const char* expr, const char* message) {
  std::fprintf(stderr, "%s:%d: check failed: %s %s\n", file, line, expr, message);
  std::fflush(stderr);
  std::abort();
}
}  // namespace base

}  // namespace pixtral
