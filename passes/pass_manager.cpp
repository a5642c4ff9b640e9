#include "passes/pass_manager.h"

#include <chrono>

#include "ir/verifier.h"

namespace kiln::passes {

const std::vector<PassInfo>& all_passes() {
  static const std::vector<PassInfo> list = {
#define PASS(fn, name, summary) {name, &run_##fn, summary},
#include "passes/passes.def"
#undef PASS
  };
  return list;
}

const PassInfo* find_pass(std::string_view name) {
  for (const PassInfo& p : all_passes())
    if (p.name == name) return &p;
  return nullptr;
}

bool PassContext::wants_dump(std::string_view pass) const {
  if (!dump) return false;
  for (const std::string& d : dump_after)
    if (d == "all" || d == pass) return true;
  return false;
}

static std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

Result<Pipeline> Pipeline::parse(std::string_view text) {
  Pipeline p;
  text = trim(text);
  if (text.empty() || text == "none") return p;
  while (true) {
    size_t comma = text.find(',');
    std::string_view item = trim(text.substr(0, comma));
    if (item == "default") {
      KILN_ASSIGN_OR_RETURN(Pipeline d, parse(kDefaultPipeline));
      p.passes_.insert(p.passes_.end(), d.passes_.begin(), d.passes_.end());
    } else {
      const PassInfo* info = find_pass(item);
      if (!info) {
        std::string known;
        for (const PassInfo& k : all_passes())
          known += (known.empty() ? "" : ", ") + std::string(k.name);
        return make_error("unknown pass '", item, "' (known: ", known, ", default)");
      }
      p.passes_.push_back(info);
    }
    if (comma == std::string_view::npos) break;
    text = text.substr(comma + 1);
  }
  return p;
}

std::string Pipeline::str() const {
  std::string s;
  for (const PassInfo* p : passes_) s += (s.empty() ? "" : ",") + std::string(p->name);
  return s;
}

Status Pipeline::run(ir::Graph& g, PassContext& ctx) const {
  if (ctx.options.verify_each) {
    Status st = ir::verify(g);
    if (!st.ok()) return make_error("before the first pass: ", st.message());
  }
  for (const PassInfo* p : passes_) {
    // A plan describes one exact graph; any pass may change the graph.
    if (p->run != &run_plan_memory) ctx.plan.reset();
    auto t0 = std::chrono::steady_clock::now();
    Status st = p->run(g, ctx);
    double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    ctx.timings.push_back({std::string(p->name), ms});
    if (!st.ok()) return make_error(p->name, ": ", st.message());
    if (ctx.options.verify_each) {
      Status v = ir::verify(g);
      if (!v.ok()) return make_error("after ", p->name, ": invalid graph: ", v.message());
    }
    if (ctx.wants_dump(p->name)) ctx.dump(p->name, g, ctx);
  }
  return Status::Ok();
}

Status run_pipeline(std::string_view text, ir::Graph& g, PassContext& ctx) {
  KILN_ASSIGN_OR_RETURN(Pipeline p, Pipeline::parse(text));
  return p.run(g, ctx);
}

}  // namespace kiln::passes
