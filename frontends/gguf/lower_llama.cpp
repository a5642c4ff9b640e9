// Llama family: SmolLM2, Llama 2/3, Mistral-style models. Pre-norm (RMSNorm) blocks, rotary
// embedding in "normal" (adjacent-pair) mode — convert_hf_to_gguf permutes the q/k weights
// so that this matches HF's rotate-half — grouped-query attention and a SwiGLU feed-forward.
#include <cmath>

#include "frontends/gguf/lower_common.h"

namespace kiln::lower {

// The SwiGLU feed-forward shared by llama and qwen: down(silu(gate(x)) · up(x)).
static ir::Value* swiglu_ffn(Lowering& L, ir::Value* x, const std::string& blk) {
  ir::Builder& b = L.b();
  const int64_t F = L.hp().n_ff;
  ir::Value* g = L.linear(x, blk + "ffn_gate.weight", F);
  ir::Value* u = L.linear(x, blk + "ffn_up.weight", F);
  return L.linear(b.mul(b.silu(g), u), blk + "ffn_down.weight", L.hp().n_embd);
}

// Llama, qwen2 and qwen3 differ only in biases, per-head norms and the rope mode.
Status lower_llama_like(Lowering& L, const std::string& rope_mode, bool biases, bool qk_norm) {
  ir::Builder& b = L.b();
  const Hparams& hp = L.hp();
  const int64_t E = hp.n_embd;
  ir::Value* embd = L.weight("token_embd.weight", {hp.n_vocab, E});
  ir::Value* h = b.named("embd").get_rows(embd, L.tokens());
  Lowering::HeadPrep prep;
  prep.rope_mode = rope_mode;
  prep.rope_base = hp.rope_base;
  prep.rope_scale = hp.rope_scale;
  prep.kq_scale = 1.0 / std::sqrt(double(hp.head_dim_k));
  if (qk_norm) {
    prep.q_norm = "attn_q_norm.weight";
    prep.k_norm = "attn_k_norm.weight";
  }
  for (int il = 0; il < hp.n_layer; ++il) {
    const std::string blk = "blk." + std::to_string(il) + ".";
    auto bias = [&](const char* n) { return biases ? blk + n : std::string(); };
    ir::Value* x = L.rms_norm_w(h, blk + "attn_norm.weight");
    ir::Value* q =
        L.linear(x, blk + "attn_q.weight", hp.n_head * hp.head_dim_k, bias("attn_q.bias"));
    ir::Value* k =
        L.linear(x, blk + "attn_k.weight", hp.n_head_kv * hp.head_dim_k, bias("attn_k.bias"));
    ir::Value* v =
        L.linear(x, blk + "attn_v.weight", hp.n_head_kv * hp.head_dim_v, bias("attn_v.bias"));
    ir::Value* a = L.attention(il, q, k, v, prep);
    a = L.linear(a, blk + "attn_output.weight", E, bias("attn_output.bias"));
    h = b.named("blk" + std::to_string(il) + ".resid").add(h, a);
    ir::Value* f = swiglu_ffn(L, L.rms_norm_w(h, blk + "ffn_norm.weight"), blk);
    h = b.named("blk" + std::to_string(il) + ".out").add(h, f);
  }
  L.head(h);
  return Status::Ok();
}

Status lower_llama(Lowering& L) {
  return lower_llama_like(L, "normal", false, false);
}

}  // namespace kiln::lower
