// PX_CHECK: broken invariants (bugs, never bad input) abort with file:line and a message.
#pragma once

#include <cstdio>
#include <cstdlib>

namespace pixtral::base {
[[noreturn]] void check_failed(const char* file, int line, const char* expr, const char* message);
}  // namespace pixtral::base

#define PX_CHECK(cond)                                                          \
  do {                                                                          \
    if (!(cond)) ::pixtral::base::check_failed(__FILE__, __LINE__, #cond, ""); \
  } while (0)

#define PX_CHECK_MSG(cond, msg)                                                    \
  do {                                                                             \
    if (!(cond)) ::pixtral::base::check_failed(__FILE__, __LINE__, #cond, (msg)); \
  } while (0)
