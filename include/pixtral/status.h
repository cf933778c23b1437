// Status and Result<T>: how expected failures (bad file, bad request, out of memory blocks) travel.
// Nothing throws across include/pixtral; broken invariants abort through PX_CHECK instead.
#pragma once

#include <cstdlib>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace pixtral {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,    // the caller's input is malformed (request, flag, file content)
  kNotFound,           // a file, tensor or key is missing
  kUnimplemented,      // a valid option this build does not support yet
  kOutOfRange,         // a size or index over a limit
  kResourceExhausted,  // memory, KV blocks
  kIoError,            // the OS refused a read or write
  kInternal,           // a bug: should not happen
  kCancelled,
};

const char* status_code_name(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status ok() { return Status(); }

  bool is_ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "invalid argument: <message>"
  std::string to_string() const;

  // Adds context in front of the message: "ctx: message". Keeps the code.
  Status with_context(const std::string& ctx) const {
    if (is_ok()) return *this;
    return Status(code_, ctx + ": " + message_);
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status invalid_argument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status not_found(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status unimplemented(std::string m) { return {StatusCode::kUnimplemented, std::move(m)}; }
inline Status out_of_range(std::string m) { return {StatusCode::kOutOfRange, std::move(m)}; }
inline Status resource_exhausted(std::string m) { return {StatusCode::kResourceExhausted, std::move(m)}; }
inline Status io_error(std::string m) { return {StatusCode::kIoError, std::move(m)}; }
inline Status internal_error(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

// Result<T>: a value or a non-ok Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}                       // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {                // NOLINT: implicit by design
    if (status_.is_ok()) status_ = Status(StatusCode::kInternal, "Result built from an ok Status");
  }

  bool is_ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() & { check(); return *value_; }
  const T& value() const& { check(); return *value_; }
  T&& value() && { check(); return std::move(*value_); }
  T* operator->() { check(); return &*value_; }
  const T* operator->() const { check(); return &*value_; }
  T& operator*() & { check(); return *value_; }

 private:
  void check() const {
    if (!value_) std::abort();  // reading the value of a failed Result is a bug
  }
  std::optional<T> value_;
  Status status_;
};

}  // namespace pixtral

// PX_RETURN_IF_ERROR(expr): return the Status of expr when it is not ok.
#define PX_RETURN_IF_ERROR(expr)                      \
  do {                                                \
    ::pixtral::Status px_status_ = (expr);            \
    if (!px_status_.is_ok()) return px_status_;       \
  } while (0)

#define PX_CONCAT_INNER(a, b) a##b
#define PX_CONCAT(a, b) PX_CONCAT_INNER(a, b)
// PX_ASSIGN_OR_RETURN(lhs, expr): lhs = value of the Result expr, or return its Status.
#define PX_ASSIGN_OR_RETURN(lhs, expr) PX_ASSIGN_OR_RETURN_IMPL(PX_CONCAT(px_result_, __LINE__), lhs, expr)
#define PX_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.is_ok()) return tmp.status();         \
  lhs = std::move(tmp).value()
