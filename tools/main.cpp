// The `kiln` command line: a thin layer over the library. Every subcommand is one file.
#include <algorithm>
#include <cstdio>
#include <vector>

#include "tools/command.h"

namespace kiln::tools {

static std::vector<Command>& registry() {
  static std::vector<Command> r;
  return r;
}

int register_command(Command c) {
  registry().push_back(std::move(c));
  return int(registry().size());
}

const std::vector<Command>& commands() {
  return registry();
}

int fail(const std::string& cmd, const std::string& message) {
  std::fprintf(stderr, "kiln %s: error: %s\n", cmd.c_str(), message.c_str());
  return 1;
}

}  // namespace kiln::tools

int main(int argc, char** argv) {
  using namespace kiln::tools;
  CLI::App app{"kiln: an ahead-of-time compiler and runtime for LLM inference (GGUF models)",
               "kiln"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("kiln ") + KILN_VERSION_STRING);
  std::vector<Command> cmds = commands();
  // (std::stable_sort pulls in libstdc++'s deprecated get_temporary_buffer under clang.)
  std::sort(cmds.begin(), cmds.end(), [](const Command& a, const Command& b) {
    return a.order != b.order ? a.order < b.order : a.name < b.name;
  });
  std::function<int()> action;
  for (const Command& c : cmds) {
    CLI::App* sub = app.add_subcommand(c.name, c.summary);
    auto run = c.setup(*sub);
    sub->callback([&action, run] { action = run; });
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  return action ? action() : 0;
}
