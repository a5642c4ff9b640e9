// Hand-built graphs for the pass tests: a Llama-style decoder (the shape SmolLM2 lowers to), built
// with the Builder the way frontends/gguf lowers a GGUF model, so the fusion and memory-planning
// figures can be checked before the real lowering exists.
#pragma once

#include <cmath>
#include <memory>
#include <string>

#include "ir/builder.h"

namespace kiln::test {

struct LlamaDims {
  int64_t layers = 2;
  int64_t batch = 1;
  int64_t tokens = 1;  // 1: decode
  int64_t embd = 576;  // SmolLM2-135M
  int64_t heads = 9;
  int64_t kv_heads = 3;
  int64_t head_dim = 64;
  int64_t ffn = 1536;
  int64_t vocab = 49152;
  int64_t ctx = 2048;
  DType wtype = DType::Q4_1;  // every projection
  DType vtype = DType::Q4_1;  // attn_v (Q4_K_M files use a different type here)
  DType kv_type = DType::F16;
};

// tokens -> get_rows -> per layer: rms_norm·w -> q/k/v mul_mat -> reshape -> rope -> kv_write ->
// attention -> reshape -> mul_mat o -> +residual -> rms_norm·w -> gate/up mul_mat -> silu·mul ->
// mul_mat down -> +residual; then rows -> get_rows -> rms_norm·w -> lm head -> logits.
inline std::unique_ptr<ir::Graph> llama_graph(const LlamaDims& d) {
  using ir::TensorType;
  using ir::Value;
  auto g = std::make_unique<ir::Graph>(d.tokens == 1 ? "decode" : "prefill");
  ir::Builder b(*g);
  const int64_t B = d.batch, T = d.tokens, E = d.embd, D = d.head_dim;
  Value* tokens = b.input("tokens", {DType::I32, {B, T}});
  Value* pos = b.input("pos", {DType::I32, {B, T}});
  Value* seq = b.input("seq", {DType::I32, {B}});
  Value* rows = b.input("rows", {DType::I32, {B}});
  // Operands first: Builder::named applies to the next node created.
  Value* embd = b.weight("token_embd.weight", {d.wtype, {d.vocab, E}});
  Value* x = b.named("embd").get_rows(embd, tokens);
  for (int64_t l = 0; l < d.layers; ++l) {
    std::string blk = "blk." + std::to_string(l) + ".";
    std::string v = "blk" + std::to_string(l) + ".";
    auto w = [&](const std::string& name, TensorType t) {
      return b.weight(blk + name + ".weight", t);
    };
    Value* attn_norm = w("attn_norm", {DType::F32, {E}});
    Value* wq = w("attn_q", {d.wtype, {d.heads * D, E}});
    Value* wk = w("attn_k", {d.wtype, {d.kv_heads * D, E}});
    Value* wv = w("attn_v", {d.vtype, {d.kv_heads * D, E}});
    Value* wo = w("attn_output", {d.wtype, {E, d.heads * D}});
    Value* ffn_norm = w("ffn_norm", {DType::F32, {E}});
    Value* wg = w("ffn_gate", {d.wtype, {d.ffn, E}});
    Value* wu = w("ffn_up", {d.wtype, {d.ffn, E}});
    Value* wd = w("ffn_down", {d.wtype, {E, d.ffn}});
    Value* ck = b.state("cache_k." + std::to_string(l), {d.kv_type, {B, d.ctx, d.kv_heads, D}});
    Value* cv = b.state("cache_v." + std::to_string(l), {d.kv_type, {B, d.ctx, d.kv_heads, D}});

    Value* h = b.rms_norm(x, 1e-5);
    h = b.named(v + "attn_in").mul(h, attn_norm);
    Value* q = b.named(v + "q").mul_mat(h, wq);
    Value* k = b.named(v + "k").mul_mat(h, wk);
    Value* vv = b.named(v + "v").mul_mat(h, wv);
    q = b.reshape(q, {B, T, d.heads, D});
    k = b.reshape(k, {B, T, d.kv_heads, D});
    vv = b.reshape(vv, {B, T, d.kv_heads, D});
    q = b.named(v + "q_rope").rope(q, pos, "normal", D, 10000.0);
    k = b.named(v + "k_rope").rope(k, pos, "normal", D, 10000.0);
    Value* kc = b.kv_write(ck, k, pos, seq);
    Value* vc = b.kv_write(cv, vv, pos, seq);
    Value* a = b.named(v + "attn").attention(q, kc, vc, pos, seq, 1.0 / std::sqrt(double(D)));
    a = b.reshape(a, {B, T, d.heads * D});
    Value* o = b.named(v + "attn_out").mul_mat(a, wo);
    x = b.named(v + "x_attn").add(x, o);
    h = b.rms_norm(x, 1e-5);
    h = b.named(v + "ffn_in").mul(h, ffn_norm);
    Value* gate = b.named(v + "gate").mul_mat(h, wg);
    Value* up = b.named(v + "up").mul_mat(h, wu);
    Value* act = b.silu(gate);
    act = b.named(v + "act").mul(act, up);
    Value* down = b.named(v + "down").mul_mat(act, wd);
    x = b.named(v + "x").add(x, down);
  }
  Value* out_norm = b.weight("output_norm.weight", {DType::F32, {E}});
  Value* lm_head = b.weight("output.weight", {d.wtype, {d.vocab, E}});
  Value* last = b.get_rows(b.reshape(x, {B * T, E}), rows);
  Value* h = b.mul(b.rms_norm(last, 1e-5), out_norm);
  Value* logits = b.named("logits").mul_mat(h, lm_head);
  b.output(logits, "logits");
  if (!b.ok()) return nullptr;
  return g;
}

}  // namespace kiln::test
