// pixtral: one binary, many subcommands (see command.h). `pixtral help` lists them.
#include <cstdio>
#include <string>

#include "cli/command.h"

int main(int argc, char** argv) {
  auto& registry = pixtral::cli::command_registry();
  const std::string name = argc > 1 ? argv[1] : "help";
  if (name == "help" || name == "--help" || name == "-h") {
    std::printf("usage: pixtral <command> [options]\n\ncommands:\n");
    for (const auto& [cmd, info] : registry) std::printf("  %-12s %s\n", cmd.c_str(), info.summary.c_str());
    return argc > 1 ? 0 : 2;
  }
  auto it = registry.find(name);
  if (it == registry.end()) {
    std::fprintf(stderr, "pixtral: unknown command '%s' (see 'pixtral help')\n", name.c_str());
    return 2;
  }
  pixtral::cli::Args args(argv + 2, argv + argc);
  return it->second.run(args);
}
