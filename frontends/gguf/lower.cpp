// Dispatch from general.architecture to the family's lowering.
#include "frontends/gguf/lower.h"

#include <charconv>

#include "frontends/gguf/lower_common.h"

namespace kiln::lower {
namespace {

struct Family {
  const char* arch;
  Status (*lower)(Lowering&);
};

constexpr Family kFamilies[] = {
    {"llama", &lower_llama},
    {"qwen2", &lower_qwen2},
    {"qwen3", &lower_qwen3},
    {"gemma3", &lower_gemma3},
};

}  // namespace

std::string GraphSpec::name() const {
  std::string n = tokens == 1 ? "decode" : "prefill_t" + std::to_string(tokens);
  n += "_b" + std::to_string(batch);
  if (all_logits) n += "_all";
  return n;
}

Result<GraphSpec> parse_graph_spec(const std::string& text, int batch, int ctx) {
  GraphSpec s;
  s.batch = batch;
  s.ctx = ctx;
  if (batch < 1 || batch > 4096) return make_error("batch must be in 1..4096, found ", batch);
  if (ctx < 0) return make_error("ctx must not be negative");
  if (text == "decode") return s;
  if (text.rfind("prefill:", 0) == 0) {
    std::string_view t = std::string_view(text).substr(8);
    int n = 0;
    auto r = std::from_chars(t.data(), t.data() + t.size(), n);
    if (r.ec != std::errc() || r.ptr != t.data() + t.size() || n < 1 || n > 65536)
      return make_error("bad prefill length in '", text, "' (expected prefill:T, 1 <= T <= 65536)");
    s.tokens = n;
    return s;
  }
  return make_error("unknown graph '", text, "' (expected decode or prefill:T)");
}

std::vector<std::string> supported_architectures() {
  std::vector<std::string> out;
  for (const Family& f : kFamilies) out.push_back(f.arch);
  return out;
}

Result<std::unique_ptr<ir::Graph>> lower_gguf(const gguf::GgufFile& file, const GraphSpec& spec) {
  KILN_ASSIGN_OR_RETURN(std::string arch, file.metadata().get_string("general.architecture"));
  const Family* fam = nullptr;
  for (const Family& f : kFamilies)
    if (arch == f.arch) fam = &f;
  if (!fam) {
    std::string list;
    for (const Family& f : kFamilies) list += (list.empty() ? "" : ", ") + std::string(f.arch);
    return make_error(file.path(), ": architecture '", arch,
                      "' is not supported (supported: ", list, ")");
  }
  if (spec.batch < 1 || spec.tokens < 1 || spec.ctx < 0)
    return make_error("bad graph spec ", spec.name());
  KILN_ASSIGN_OR_RETURN(Hparams hp, read_hparams(file, arch));
  if (spec.ctx > 0 && spec.ctx < spec.tokens)
    return make_error("ctx ", spec.ctx, " is smaller than the prefill length ", spec.tokens);
  auto g = std::make_unique<ir::Graph>(spec.name());
  Lowering L(file, spec, std::move(hp), *g);
  Status st = fam->lower(L);
  if (st.ok()) st = L.finish();
  if (!st.ok()) return st.error().wrap("lowering " + arch);
  return g;
}

}  // namespace kiln::lower
