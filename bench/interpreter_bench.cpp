// Speed of the reference interpreter on a real model: one decode step and one 16-token prefill
// of SmolLM2-135M (Q4_1) from $KILN_MODELS (default ~/.cache/kiln/models; skipped when absent).
//
// The graph is built here by hand from the file's hyperparameters (a plain llama block) until
// the lowering (frontends/gguf/lower.h) exists; then this should call lower::lower_gguf.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "frontends/gguf/gguf_file.h"
#include "ir/builder.h"
#include "runtime/interpreter.h"

namespace kiln::bench {

inline std::string smollm2_path() {
  const char* env = std::getenv("KILN_MODELS");
  const char* home = std::getenv("HOME");
  std::string dir = env ? env : std::string(home ? home : "") + "/.cache/kiln/models";
  std::string path = dir + "/SmolLM2-135M-Instruct.Q4_1.gguf";
  return std::filesystem::exists(path) ? path : "";
}

// A llama graph (B sequences of T tokens, logits of R rows) over a GGUF file's tensors.
inline Result<std::unique_ptr<ir::Graph>> llama_graph(const gguf::GgufFile& f, int64_t B, int64_t T,
                                                      int64_t R, int64_t ctx) {
  const gguf::Metadata& m = f.metadata();
  KILN_ASSIGN_OR_RETURN(uint64_t L, m.get_uint("llama.block_count"));
  KILN_ASSIGN_OR_RETURN(uint64_t E, m.get_uint("llama.embedding_length"));
  KILN_ASSIGN_OR_RETURN(uint64_t F, m.get_uint("llama.feed_forward_length"));
  KILN_ASSIGN_OR_RETURN(uint64_t Hq, m.get_uint("llama.attention.head_count"));
  KILN_ASSIGN_OR_RETURN(uint64_t Hkv, m.get_uint("llama.attention.head_count_kv"));
  KILN_ASSIGN_OR_RETURN(double eps, m.get_float("llama.attention.layer_norm_rms_epsilon"));
  KILN_ASSIGN_OR_RETURN(double base, m.get_float_or("llama.rope.freq_base", 10000.0));
  const int64_t D = int64_t(E / Hq);
  KILN_ASSIGN_OR_RETURN(const gguf::TensorInfo* emb, f.tensor("token_embd.weight"));
  const int64_t V = int64_t(emb->dims[1]);

  auto g = std::make_unique<ir::Graph>(T == 1 ? "decode" : "prefill");
  ir::Builder b(*g);
  auto w = [&](const std::string& name) -> ir::Value* {
    const gguf::TensorInfo* t = f.find_tensor(name);
    if (!t) return nullptr;
    ir::Shape s;
    for (auto it = t->dims.rbegin(); it != t->dims.rend(); ++it) s.push_back(int64_t(*it));
    return b.weight(name, {t->type, s});
  };
  ir::Value* tokens = b.input("tokens", {DType::I32, {B, T}});
  ir::Value* pos = b.input("pos", {DType::I32, {B, T}});
  ir::Value* seq = b.input("seq", {DType::I32, {B}});
  ir::Value* rows = b.input("rows", {DType::I32, {R}});
  ir::Value* x = b.get_rows(w("token_embd.weight"), tokens);
  for (uint64_t l = 0; l < L; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    ir::Value* h = b.mul(b.rms_norm(x, eps), w(p + "attn_norm.weight"));
    ir::Value* q = b.reshape(b.mul_mat(h, w(p + "attn_q.weight")), {B, T, int64_t(Hq), D});
    ir::Value* k = b.reshape(b.mul_mat(h, w(p + "attn_k.weight")), {B, T, int64_t(Hkv), D});
    ir::Value* v = b.reshape(b.mul_mat(h, w(p + "attn_v.weight")), {B, T, int64_t(Hkv), D});
    q = b.rope(q, pos, "normal", D, base);
    k = b.rope(k, pos, "normal", D, base);
    ir::TensorType cache{DType::F16, {B, ctx, int64_t(Hkv), D}};
    ir::Value* kc = b.kv_write(b.state("cache_k." + std::to_string(l), cache), k, pos, seq);
    ir::Value* vc = b.kv_write(b.state("cache_v." + std::to_string(l), cache), v, pos, seq);
    ir::Value* a = b.attention(q, kc, vc, pos, seq, 1.0 / std::sqrt(double(D)));
    a = b.reshape(a, {B, T, int64_t(E)});
    x = b.add(x, b.mul_mat(a, w(p + "attn_output.weight")));
    h = b.mul(b.rms_norm(x, eps), w(p + "ffn_norm.weight"));
    ir::Value* gate = b.silu(b.mul_mat(h, w(p + "ffn_gate.weight")));
    ir::Value* up = b.mul_mat(h, w(p + "ffn_up.weight"));
    x = b.add(x, b.mul_mat(b.mul(gate, up), w(p + "ffn_down.weight")));
  }
  x = b.get_rows(b.reshape(x, {B * T, int64_t(E)}), rows);
  x = b.mul(b.rms_norm(x, eps), w("output_norm.weight"));
  ir::Value* out = f.find_tensor("output.weight") ? w("output.weight") : w("token_embd.weight");
  b.output(b.mul_mat(x, out), "logits");
  if (!b.ok()) return b.status().error();
  (void)F;
  (void)V;
  return g;
}

struct Model {
  std::unique_ptr<gguf::GgufFile> file;
  std::unique_ptr<runtime::GgufWeights> weights;
};

inline void run_graph(benchmark::State& state, int64_t T) {
  std::string path = smollm2_path();
  if (path.empty()) {
    state.SkipWithError("SmolLM2-135M-Instruct.Q4_1.gguf not in $KILN_MODELS");
    return;
  }
  auto file = gguf::GgufFile::open(path);
  if (!file.ok()) return state.SkipWithError(file.message().c_str());
  runtime::GgufWeights weights(**file);
  const int64_t ctx = 256;
  auto g = llama_graph(**file, 1, T, 1, ctx);
  if (!g.ok()) return state.SkipWithError(g.message().c_str());
  runtime::StateStore states;
  auto it = runtime::Interpreter::create(**g, weights, states);
  if (!it.ok()) return state.SkipWithError(it.message().c_str());
  std::vector<int32_t> tokens(static_cast<size_t>(T)), pos(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) tokens[size_t(t)] = int32_t(100 + t);
  (void)(*it)->set_input("seq", std::vector<int32_t>{0});
  (void)(*it)->set_input("rows", std::vector<int32_t>{int32_t(T - 1)});
  (void)(*it)->set_input("tokens", tokens);
  int32_t p0 = 0;
  for (auto _ : state) {
    for (int64_t t = 0; t < T; ++t) pos[size_t(t)] = int32_t((p0 + t) % ctx);
    p0 = int32_t((p0 + T) % ctx);
    (void)(*it)->set_input("pos", pos);
    Status st = (*it)->run();
    if (!st.ok()) return state.SkipWithError(st.message().c_str());
    benchmark::DoNotOptimize((*it)->output("logits")->data());
  }
  state.counters["tok/s"] =
      benchmark::Counter(double(T), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_InterpreterDecodeSmolLM2(benchmark::State& state) {
  run_graph(state, 1);
}
void BM_InterpreterPrefill16SmolLM2(benchmark::State& state) {
  run_graph(state, 16);
}
BENCHMARK(BM_InterpreterDecodeSmolLM2)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_InterpreterPrefill16SmolLM2)->Unit(benchmark::kMillisecond);

}  // namespace kiln::bench
