// Subcommand registry of the `kiln` binary. Each tools/cmd_*.cpp registers itself with
// KILN_REGISTER_COMMAND; main() builds the CLI11 app from the registry, so adding a command is
// adding a file.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>

namespace kiln::tools {

struct Command {
  std::string name;
  std::string summary;
  int order = 100;  // position in `kiln --help`
  // Adds options to the subcommand and returns the action to run when it is chosen.
  std::function<std::function<int()>(CLI::App&)> setup;
};

int register_command(Command c);
const std::vector<Command>& commands();

// Prints "kiln <cmd>: error: msg" to stderr and returns exit code 1.
int fail(const std::string& cmd, const std::string& message);

}  // namespace kiln::tools

#define KILN_REGISTER_COMMAND(ident, ...) \
  static const int kiln_cmd_##ident = ::kiln::tools::register_command(__VA_ARGS__)
