// The module of a graph: a kernel per distinct region (rows, contraction or attention), the
// sample kernel that finishes the fused argmax, the device prelude and constant tables.
#include "codegen/cuda/cuda_codegen.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <unordered_map>

#include "codegen/cuda/emit.h"
#include "codegen/cuda/weight_layout.h"
#include "ir/printer.h"
#include "passes/graph_util.h"

namespace kiln::cuda {

const char* kernel_kind_name(KernelKind k) {
  switch (k) {
    case KernelKind::kRows:
      return "rows";
    case KernelKind::kContraction:
      return "contraction";
    case KernelKind::kAttention:
      return "attention";
    case KernelKind::kSample:
      return "sample";
  }
  return "?";
}

std::string HostTable::key() const {
  if (kind == kGeluF16) return "gelu_f16";
  char buf[128];
  std::snprintf(buf, sizeof buf, "rope:%lld:%.17g:%.17g:%lld", (long long)n_dims, freq_base,
                freq_scale, (long long)positions);
  return buf;
}

namespace {

using detail::Code;

// Positions a rope table covers: the longest KV cache of the graph (a decode or prefill step
// never ropes a position it cannot store), or 0 when there is none (sincos in double then).
int64_t rope_positions(const ir::Graph& g) {
  int64_t c = 0;
  for (const auto& n : g.nodes()) {
    if (n->op == ir::Op::State && n->result()->type.rank() == 4)
      c = std::max(c, n->result()->type.dim(1));
    if (n->op == ir::Op::Region)
      for (const auto& b : n->body->nodes())
        if (b->op == ir::Op::KvWrite || b->op == ir::Op::Attention)
          c = std::max(c, b->operand(b->op == ir::Op::KvWrite ? 0 : 1)->type.dim(1));
  }
  return c;
}
using detail::num;

// A name-free text of a region: identical regions (every layer's) share one kernel.
std::string signature(const ir::Node& r, const std::vector<ArgLayout>& layouts, int argmax_result) {
  std::unordered_map<const ir::Value*, int> ids;
  std::string s;
  for (const ir::Value* v : r.operands) s += v->type.str() + ";";
  for (ArgLayout l : layouts) s += l == ArgLayout::kPacked ? "P" : "p";
  s += "|" + std::to_string(argmax_result) + "|";
  for (const auto& n : r.body->nodes()) {
    s += std::string(ir::op_name(n->op)) + "(";
    for (const ir::Value* o : n->operands) s += std::to_string(ids.count(o) ? ids[o] : -1) + ",";
    s += ")";
    for (const ir::Attr& a : n->attrs.list()) s += a.name + "=" + ir::attr_value_str(a.value) + ",";
    for (const ir::Value* v : n->results) {
      const int id = int(ids.size());
      ids[v] = id;
      s += v->type.str() + ";";
    }
    s += "\n";
  }
  return s;
}

std::string sanitize(const std::string& name) {
  std::string s = "kiln_";
  for (char c : name) s += (std::isalnum(static_cast<unsigned char>(c)) ? c : '_');
  return s;
}

std::string region_comment(const ir::Node& r) {
  std::string s = "// region " + ir::print_node(r) + "\n";
  for (const auto& n : r.body->nodes()) s += "//   " + ir::print_node(*n) + "\n";
  return s;
}

std::string sample_kernel(int64_t rows) {
  Code c;
  c.line(
      "// Finishes the fused argmax: the token of each row from its cell, which it resets for the");
  c.line(
      "// next step; optionally feeds the token and the next position back into the decode "
      "inputs.");
  c.open("extern \"C\" __global__ void __launch_bounds__(32) kiln_sample(const KilnArgs args)");
  c.line("u64* cells = (u64*)args.p[0];");
  c.line("int* tokens = (int*)args.p[1];");
  c.line("int* fb_tokens = (int*)args.p[2];");
  c.line("int* fb_pos = (int*)args.p[3];");
  c.line("u32* params = (u32*)args.p[4];");
  c.line("kl_pdl_wait();");
  c.open("for (int r = threadIdx.x; r < " + num(rows) + "; r += 32)");
  c.line("const u64 v = cells[r];");
  c.line("const int t = v == 0ull ? 0 : (int)(0xffffffffu - (u32)(v & 0xffffffffull));");
  c.line("tokens[r] = t;");
  c.line("cells[r] = 0ull;");
  c.line("if (fb_tokens) fb_tokens[r] = t;");
  c.line("if (fb_pos) fb_pos[r] += 1;");
  c.close();
  c.line("KL_SYNC();");
  c.line("if (threadIdx.x == 0) params[3] += 1u;");
  c.close();
  return c.str();
}

}  // namespace

Result<Program> generate(const ir::Graph& g, const Options& o) {
  Program p;
  p.graph_name = g.name();
  const auto constants = passes::constant_values(g);

  // The fused argmax: the region result behind the output.
  const ir::Node* am_region = nullptr;
  int am_result = -1;
  if (!o.argmax_output.empty()) {
    for (const auto& n : g.nodes())
      if (n->op == ir::Op::Output && n->attrs.s("name") == o.argmax_output) {
        const ir::Value* v = n->operand(0);
        while (v->def && passes::is_free(*v->def)) v = v->def->operand(0);
        if (v->def && v->def->op == ir::Op::Region && v->type.dtype == DType::F32 &&
            v->type.rank() >= 1) {
          am_region = v->def;
          am_result = v->index;
          p.argmax_output = o.argmax_output;
          p.argmax_cols = v->type.dim(-1);
          p.argmax_rows = v->type.numel() / p.argmax_cols;
        }
      }
  }

  const int64_t positions = rope_positions(g);
  std::map<std::string, size_t> by_sig;  // signature -> index of the first spec using it
  std::vector<const ir::Node*> ropes;
  Code kernels;
  for (size_t i = 0; i < g.nodes().size(); ++i) {
    const ir::Node& r = *g.nodes()[i];
    if (r.op != ir::Op::Region) {
      if (!r.has(ir::kSource) && !r.has(ir::kSink) && !passes::is_free(r) &&
          !constants.count(r.result()))
        return make_error(
            "node ", i, " (", ir::print_node(r),
            ") is outside every region: run the fuse pass before CUDA code generation");
      continue;
    }
    const std::string rname = r.attrs.s("name");
    KernelSpec spec;
    spec.name = rname;
    spec.node = int(i);
    spec.num_operands = r.num_operands();
    spec.num_results = int(r.results.size());
    for (const ir::Value* v : r.operands) {
      const bool packed = is_quantized(v->type.dtype) && constants.count(v);
      if (is_quantized(v->type.dtype) && !packed)
        return make_error("region ", rname, ": a ", dtype_name(v->type.dtype),
                          " operand that is not a constant (a quantized KV cache or activation) "
                          "is not supported on CUDA");
      spec.layouts.push_back(packed ? ArgLayout::kPacked : ArgLayout::kPlain);
    }
    const ir::Node* yn = detail::find_op(*r.body, ir::Op::Yield);
    for (int ri = 0; ri < spec.num_results; ++ri)
      spec.result_written.push_back(!detail::yield_is_alias(yn->operand(ri)));
    if (&r == am_region) {
      spec.argmax = true;
      spec.argmax_result = am_result;
    }
    for (const auto& n : r.body->nodes())
      if (n->op == ir::Op::Rope) ropes.push_back(n.get());

    const std::string sig = signature(r, spec.layouts, spec.argmax ? am_result : -1);
    if (auto it = by_sig.find(sig); it != by_sig.end()) {
      const KernelSpec& first = p.kernels_by_region[it->second];
      spec.entry = first.entry;
      spec.kind = first.kind;
      std::copy(first.grid, first.grid + 3, spec.grid);
      spec.block = first.block;
      spec.scratch_bytes = first.scratch_bytes;
      spec.summary = first.summary;
      spec.host_tables = first.host_tables;
      spec.token_count = first.token_count;
      p.kernels_by_region.push_back(spec);
      continue;
    }
    if (spec.num_args() > kMaxArgs)
      return make_error("region ", rname, " has ", spec.num_args(), " kernel arguments (at most ",
                        kMaxArgs, ")");
    spec.entry = sanitize(rname);
    detail::KernelCtx k;
    k.region = &r;
    k.body = r.body.get();
    for (int a = 0; a < r.num_operands(); ++a) k.arg_names.push_back("a" + std::to_string(a));
    k.layouts = spec.layouts;
    k.host_tables = &p.host_tables;
    k.tables_used = &spec.host_tables;
    k.rope_positions = positions;
    Code code;
    Status st;
    if (detail::find_op(*r.body, ir::Op::MulMat)) {
      st = detail::build_contraction(k, spec.entry, spec, code, o);
    } else if (detail::find_op(*r.body, ir::Op::Attention)) {
      st = detail::build_attention(k, spec.entry, spec, code);
    } else {
      st = detail::build_rows(k, spec.entry, spec, code);
    }
    if (!st.ok()) return st.error().wrap("region " + rname);
    for (int t : spec.host_tables)
      if (spec.num_args() > kMaxArgs - 1 - t)
        return make_error("region ", rname, ": ", spec.num_args(),
                          " kernel arguments leave no slot for host table ", t);
    kernels.raw(region_comment(r));
    kernels.raw("// launch: grid (" + num(spec.grid[0]) + ", " + num(spec.grid[1]) + ", " +
                num(spec.grid[2]) + "), block " + num(spec.block) + "; " + spec.summary + "\n");
    kernels.raw(code.str());
    kernels.raw("\n");
    by_sig[sig] = p.kernels_by_region.size();
    p.kernels_by_region.push_back(spec);
    p.distinct++;
  }
  if (am_region) {
    p.has_sample = true;
    p.sample.name = "sample";
    p.sample.entry = "kiln_sample";
    p.sample.kind = KernelKind::kSample;
    p.sample.block = 32;
    p.sample.summary = "argmax cells -> tokens (" + num(p.argmax_rows) + " rows)";
    kernels.raw(sample_kernel(p.argmax_rows));
  }
  p.kernels = kernels.str();
  p.tables = detail::rope_tables(ropes);
  p.source = detail::prelude(false) + "\n" + p.tables + "\n" + p.kernels;
  return p;
}

std::string emulation_source(const Program& p) {
  return detail::prelude(true) + "\n" + p.tables + "\n" + p.kernels;
}

Result<std::string> emit_cuda(const ir::Graph& g, const Options& o) {
  KILN_ASSIGN_OR_RETURN(Program p, generate(g, o));
  std::string s = "// kiln: CUDA module of graph " + p.graph_name + ": " +
                  std::to_string(p.kernels_by_region.size()) + " kernels per run (" +
                  std::to_string(p.distinct) + " distinct)" + (p.has_sample ? " + sample" : "") +
                  "\n";
  for (const KernelSpec& k : p.kernels_by_region)
    s += "//   " + k.name + " -> " + k.entry + " grid(" + num(k.grid[0]) + "," + num(k.grid[1]) +
         ") block " + num(k.block) + "\n";
  return s + p.source;
}

}  // namespace kiln::cuda
