// Fuzzes the IR text parser (docs/ir.md): any bytes give a graph or an error naming a line and
// column, never a crash. A graph that parses must print to text that parses back to the same
// text, and the default pass pipeline must either fail cleanly or leave a valid graph with a
// valid memory plan (so the fuzzer also drives the passes over odd but valid graphs).
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "ir/parser.h"
#include "ir/printer.h"
#include "passes/memory_plan.h"
#include "passes/pass_manager.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (1u << 16)) return 0;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto g = kiln::ir::parse(text);
  if (!g.ok()) {
    if (g.message().rfind("line ", 0) != 0 && g.message().rfind("invalid graph", 0) != 0) abort();
    return 0;
  }
  std::string printed = kiln::ir::print(**g);
  auto again = kiln::ir::parse(printed);
  if (!again.ok() || kiln::ir::print(**again) != printed) abort();

  if ((*g)->size() > 256) return 0;
  kiln::passes::PassContext ctx;
  ctx.options.verify_each = true;
  kiln::Status st = kiln::passes::run_pipeline("default", **g, ctx);
  if (!st.ok()) {
    // A pass may refuse a graph; it must never leave an invalid one behind.
    if (st.message().find("invalid graph") != std::string::npos) abort();
    return 0;
  }
  if (!ctx.plan || !kiln::passes::validate(*ctx.plan, **g).ok()) abort();
  std::string fused = kiln::ir::print(**g);
  auto reparsed = kiln::ir::parse(fused);
  if (!reparsed.ok() || kiln::ir::print(**reparsed) != fused) abort();
  return 0;
}
