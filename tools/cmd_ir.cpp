// `kiln ir MODEL [--graph decode|prefill:T] [--batch B] [--ctx N] [--passes LIST]
//   [--dump-after NAME|all] [--format text|dot|json] [--stats]`: a model's graph after any passes.
// `kiln ir --parse FILE.kir [--passes LIST] ...`: the same for IR text; malformed text is an
// error naming the line and column.
//
// Text output is the graph, then the memory plan as `// plan` comment lines when plan-memory ran
// (docs/passes.md), so the output is itself valid input for `--parse`.
#include <cstdio>
#include <fstream>
#include <sstream>

#include "codegen/cuda/cuda_codegen.h"  // [cuda]
#include "frontends/gguf/gguf_file.h"
#include "frontends/gguf/lower.h"
#include "ir/parser.h"
#include "ir/printer.h"
#include "passes/pass_manager.h"
#include "passes/stats.h"
#include "tools/command.h"

namespace kiln::tools {
namespace {

struct IrOptions {
  std::string model;
  std::string parse_file;
  std::string graph = "decode";
  int batch = 1;
  int ctx = 0;
  std::string passes;  // default: "default" for a model, "none" for --parse
  std::string dump_after;
  std::string format = "text";
  bool stats = false;
  std::string emit;  // [cuda] "cuda": the generated CUDA C++ of the graph (after the passes)
};

std::string render(const ir::Graph& g, const passes::PassContext& ctx, const std::string& format) {
  if (format == "dot") return ir::print_dot(g);
  if (format == "json") return ir::print_json(g) + "\n";
  return ir::print(g) + (ctx.plan ? ctx.plan->str() : "");
}

int run_ir(const IrOptions& o) {
  if (!o.emit.empty() && o.emit != "cuda")  // [cuda]
    return fail("ir", "--emit must be cuda, found '" + o.emit + "'");
  if (o.format != "text" && o.format != "dot" && o.format != "json")
    return fail("ir", "--format must be text, dot or json, found '" + o.format + "'");
  std::unique_ptr<ir::Graph> g;
  if (!o.parse_file.empty()) {
    std::ifstream in(o.parse_file, std::ios::binary);
    if (!in) return fail("ir", "cannot read '" + o.parse_file + "'");
    std::stringstream ss;
    ss << in.rdbuf();
    auto parsed = ir::parse(ss.str());
    if (!parsed.ok()) return fail("ir", o.parse_file + ": " + parsed.message());
    g = std::move(*parsed);
  } else {
    auto spec = lower::parse_graph_spec(o.graph, o.batch, o.ctx);
    if (!spec.ok()) return fail("ir", spec.message());
    auto file = gguf::GgufFile::open(o.model);
    if (!file.ok()) return fail("ir", file.message());
    auto lowered = lower::lower_gguf(**file, *spec);
    if (!lowered.ok()) return fail("ir", lowered.message());
    g = std::move(*lowered);
  }

  std::string pipeline = !o.passes.empty() ? o.passes : o.parse_file.empty() ? "default" : "none";
  passes::PassContext ctx;
  ctx.options.verify_each = true;  // a tool run is cheap next to what it helps debug
  if (!o.dump_after.empty()) {
    ctx.dump_after = {o.dump_after};
    if (o.dump_after != "all" && !passes::find_pass(o.dump_after))
      return fail("ir", "--dump-after: unknown pass '" + o.dump_after + "'");
    ctx.dump = [&](std::string_view pass, const ir::Graph& gr, const passes::PassContext& c) {
      std::printf("// ---- after %.*s ----\n%s", int(pass.size()), pass.data(),
                  render(gr, c, o.format).c_str());
    };
  }
  Status st = passes::run_pipeline(pipeline, *g, ctx);
  if (!st.ok()) return fail("ir", st.message());

  if (o.stats) {
    passes::GraphStats s = passes::graph_stats(*g);
    std::optional<passes::MemoryPlan> plan = ctx.plan;
    if (!plan) {  // the figures are worth having without the pass too
      auto p = passes::plan_memory(*g, ctx.options.alignment);
      if (p.ok()) plan = std::move(*p);
    }
    std::printf("graph %s after %s\n%s", g->name().c_str(), pipeline.c_str(),
                passes::format_stats(s, plan ? &*plan : nullptr).c_str());
    std::string times;
    for (const passes::PassTiming& t : ctx.timings) {
      char buf[96];
      std::snprintf(buf, sizeof buf, "%s%s %.2f ms", times.empty() ? "" : ", ", t.pass.c_str(),
                    t.ms);
      times += buf;
    }
    if (!times.empty()) std::printf("pass times: %s\n", times.c_str());
    return 0;
  }
  if (o.emit == "cuda") {  // [cuda]
    auto src = cuda::emit_cuda(*g);
    if (!src.ok()) return fail("ir", src.message());
    std::fputs(src->c_str(), stdout);
    return 0;
  }
  std::fputs(render(*g, ctx, o.format).c_str(), stdout);
  return 0;
}

}  // namespace

KILN_REGISTER_COMMAND(
    ir,
    Command{
        "ir", "Print a model's graph (or IR text) after compiler passes", 60,
        [](CLI::App& app) -> std::function<int()> {
          auto o = std::make_shared<IrOptions>();
          auto* model = app.add_option("model", o->model, "GGUF model file");
          auto* parse =
              app.add_option("--parse", o->parse_file, "Read IR text (.kir) instead of a model");
          model->excludes(parse);
          app.add_option("--graph", o->graph, "decode or prefill:T (default decode)");
          app.add_option("--batch", o->batch, "Sequences per call (default 1)");
          app.add_option("--ctx", o->ctx, "KV-cache length (default: min(model context, 4096))");
          std::string passes_help =
              "Comma-separated passes, 'default' or 'none' (default: 'default' for "
              "a model, 'none' for --parse). Passes:";
          for (const passes::PassInfo& p : passes::all_passes())
            passes_help += " " + std::string(p.name) + ",";
          passes_help.back() = '.';
          app.add_option("--passes", o->passes, passes_help);
          app.add_option("--dump-after", o->dump_after,
                         "Print the graph after this pass (or 'all')");
          app.add_option("--format", o->format, "text, dot or json (default text)");
          app.add_option(
              "--emit", o->emit,
              "cuda: print the CUDA C++ of the fused graph (needs the fuse pass)");  // [cuda]
          app.add_flag(
              "--stats", o->stats,
              "Print nodes, kernels (per layer), arena vs naive vs lower bound, FLOPs and bytes "
              "per token instead of the graph");
          return [=] {
            if (model->count() == 0 && parse->count() == 0)
              return fail("ir", "give a MODEL or --parse FILE");
            return run_ir(*o);
          };
        }});

}  // namespace kiln::tools
