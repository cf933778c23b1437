#include "cli/command.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>

namespace pixtral::cli {

std::map<std::string, Command>& command_registry() {
  static std::map<std::string, Command> registry;
  return registry;
}

std::string command_name(const char* identifier) {
  std::string name(identifier);
  for (char& c : name)
    if (c == '_') c = '-';
  return name;
}

std::optional<int64_t> parse_int(const std::string& text) {
  if (text.empty()) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (errno != 0 || end != text.c_str() + text.size()) return std::nullopt;
  return v;
}

std::optional<double> parse_double(const std::string& text) {
  if (text.empty()) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(text.c_str(), &end);
  if (errno != 0 || end != text.c_str() + text.size()) return std::nullopt;
  return v;
}

std::optional<std::string> FlagReader::value(const std::string& name) {
  std::optional<std::string> result;
  const std::string prefix = name + "=";
  for (size_t i = 0; i < args_.size(); ++i) {
    if (args_[i] == name && i + 1 < args_.size()) {
      used_[i] = used_[i + 1] = true;
      result = args_[i + 1];
      ++i;
    } else if (args_[i].rfind(prefix, 0) == 0) {
      used_[i] = true;
      result = args_[i].substr(prefix.size());
    }
  }
  return result;
}

std::vector<std::string> FlagReader::values(const std::string& name) {
  std::vector<std::string> result;
  const std::string prefix = name + "=";
  for (size_t i = 0; i < args_.size(); ++i) {
    if (args_[i] == name && i + 1 < args_.size()) {
      used_[i] = used_[i + 1] = true;
      result.push_back(args_[i + 1]);
      ++i;
    } else if (args_[i].rfind(prefix, 0) == 0) {
      used_[i] = true;
      result.push_back(args_[i].substr(prefix.size()));
    }
  }
  return result;
}

bool FlagReader::flag(const std::string& name) {
  bool found = false;
  for (size_t i = 0; i < args_.size(); ++i) {
    if (args_[i] == name) {
      used_[i] = true;
      found = true;
    }
  }
  return found;
}

std::string FlagReader::finish() const {
  for (size_t i = 0; i < args_.size(); ++i) {
    if (!used_[i]) return "unexpected argument '" + args_[i] + "'";
  }
  return "";
}

int usage_error(const std::string& cmd, const std::string& message) {
  std::fprintf(stderr, "pixtral %s: %s\n(see 'pixtral help')\n", cmd.c_str(), message.c_str());
  return 2;
}

int failure(const std::string& cmd, const std::string& message) {
  std::fprintf(stderr, "pixtral %s: %s\n", cmd.c_str(), message.c_str());
  return 1;
}

}  // namespace pixtral::cli
