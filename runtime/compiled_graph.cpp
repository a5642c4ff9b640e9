#include "runtime/compiled_graph.h"

#include <chrono>

#include "passes/pass_manager.h"
#include "runtime/memory_trace.h"

namespace kiln::runtime {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

Result<CompiledGraph> JitGraphSource::compile(const lower::GraphSpec& spec) {
  CompiledGraph c;
  c.spec = spec;
  auto t0 = std::chrono::steady_clock::now();
  KILN_ASSIGN_OR_RETURN(c.graph, lower::lower_gguf(file_, spec));
  c.lower_seconds = seconds_since(t0);
  trace_rss("lowered");

  t0 = std::chrono::steady_clock::now();
  passes::PassContext ctx;
  ctx.options.verify_each = false;
  Status st = passes::run_pipeline(pipeline_, *c.graph, ctx);
  if (!st.ok()) return st.error().wrap(spec.name());
  if (!ctx.plan)
    return make_error(spec.name(), ": the pass pipeline '", pipeline_,
                      "' made no memory plan (it must end with plan-memory)");
  c.plan = std::move(*ctx.plan);
  c.passes_seconds = seconds_since(t0);
  trace_rss("passes run");

  t0 = std::chrono::steady_clock::now();
  auto prog = cpu::jit_compile(*c.graph, cpu::Target{}, options_);
  if (!prog.ok()) return prog.error().wrap(spec.name());
  c.program = std::move(*prog);
  c.compile_seconds = seconds_since(t0);
  trace_rss("code generated");
  return c;
}

}  // namespace kiln::runtime
