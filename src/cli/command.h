// The `pixtral` binary's subcommands. Each lives in its own cmd_*.cpp and registers itself:
//   PX_REGISTER_COMMAND(generate, "run the model on a prompt", run_generate);
// A command gets its arguments after the command name and returns the process exit code.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace pixtral::cli {

using Args = std::vector<std::string>;
using CommandFn = std::function<int(const Args&)>;

struct Command {
  std::string summary;
  CommandFn run;
};

std::map<std::string, Command>& command_registry();
std::string command_name(const char* identifier);  // make_tiny -> make-tiny

struct CommandRegistrar {
  CommandRegistrar(const char* name, const char* summary, CommandFn fn) {
    command_registry()[name] = Command{summary, std::move(fn)};
  }
};

// Small flag reader: "--name value" and "--name=value"; "--flag" for booleans.
// Unknown flags are reported by finish().
class FlagReader {
 public:
  explicit FlagReader(const Args& args) : args_(args), used_(args.size(), false) {}
  std::optional<std::string> value(const std::string& name);       // last occurrence
  std::vector<std::string> values(const std::string& name);         // every occurrence, in order
  bool flag(const std::string& name);
  // Returns an error message for unused or malformed arguments, or "" when all were consumed.
  std::string finish() const;

 private:
  const Args& args_;
  std::vector<bool> used_;
};

// Parses a whole decimal integer (no trailing characters); nullopt otherwise.
std::optional<int64_t> parse_int(const std::string& text);
std::optional<double> parse_double(const std::string& text);

// Prints "pixtral <cmd>: <message>" to stderr and returns 2 (bad usage) or 1 (failure).
int usage_error(const std::string& cmd, const std::string& message);
int failure(const std::string& cmd, const std::string& message);

}  // namespace pixtral::cli

// `name` is an identifier; underscores become dashes on the command line (make_tiny -> make-tiny).
#define PX_REGISTER_COMMAND(name, summary, fn) \
  static ::pixtral::cli::CommandRegistrar px_command_##name(::pixtral::cli::command_name(#name).c_str(), summary, fn)
