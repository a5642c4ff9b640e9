#include "codegen/cuda/compile_graph.h"

#include <cstdlib>

namespace kiln::cuda {

Result<GraphBinary> compile_graph(const ir::Graph& g, const CompileOptions& co, const Options& o) {
  GraphBinary b;
  KILN_ASSIGN_OR_RETURN(b.program, generate(g, o));
  auto m = compile_module(b.program.source, b.program.graph_name, co);
  if (!m.ok()) return m.error().wrap("graph " + b.program.graph_name);
  b.module = std::move(*m);
  return b;
}

Result<std::vector<int>> parse_cuda_target(const std::string& target) {
  if (target == "cuda") return std::vector<int>{80, 90};
  if (target.rfind("cuda:", 0) != 0)
    return make_error("target '", target, "' is not cuda, cuda:sm_XX or cuda:sm_XX,sm_YY");
  std::vector<int> archs;
  size_t p = 5;
  while (p <= target.size()) {
    size_t q = target.find(',', p);
    if (q == std::string::npos) q = target.size();
    const std::string item = target.substr(p, q - p);
    char* end = nullptr;
    const long v = item.rfind("sm_", 0) == 0 ? std::strtol(item.c_str() + 3, &end, 10) : 0;
    if (item.size() <= 3 || !end || *end || v < 50 || v > 200)
      return make_error("target '", target, "': '", item, "' is not an architecture like sm_90");
    archs.push_back(int(v));
    p = q + 1;
  }
  return archs;
}

}  // namespace kiln::cuda
