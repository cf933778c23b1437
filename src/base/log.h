// Minimal leveled logging to stderr. Level from PIXTRAL_LOG (error, warn, info, debug); default info.
#pragma once

#include <cstdarg>

namespace pixtral::base {

enum class LogLevel { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3 };

LogLevel log_level();
void set_log_level(LogLevel level);
// printf-style; prefixes "[pixtral] level: " and appends a newline.
void log(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

}  // namespace pixtral::base

#define PX_LOG_ERROR(...) ::pixtral::base::log(::pixtral::base::LogLevel::kError, __VA_ARGS__)
#define PX_LOG_WARN(...) ::pixtral::base::log(::pixtral::base::LogLevel::kWarn, __VA_ARGS__)
#define PX_LOG_INFO(...) ::pixtral::base::log(::pixtral::base::LogLevel::kInfo, __VA_ARGS__)
#define PX_LOG_DEBUG(...) ::pixtral::base::log(::pixtral::base::LogLevel::kDebug, __VA_ARGS__)
