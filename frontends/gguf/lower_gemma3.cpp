// Gemma 3. Differences from llama, each as llama.cpp implements it:
// - the embedding is scaled by sqrt(n_embd);
// - q and k are RMS-normalized per head before NeoX rotary embedding, and q is then scaled by
//   1/sqrt(head_dim) (so the softmax scale is 1);
// - sliding-window layers are interleaved with global ones: every 6th layer (il % 6 == 5) is
//   global, using rope.freq_base; the others attend to the last `sliding_window` positions with
//   rope base 10000 (rope.freq_base_swa when the file sets it);
// - pre- and post-norms around both attention and the feed-forward;
// - GELU (tanh approximation, evaluated through f16 as ggml-cpu's table does) gated feed-forward;
// - final logit soft-capping when the file sets final_logit_softcapping.
// Norm weights in GGUF already include Gemma's "+1".
#include <cmath>

#include "frontends/gguf/lower_common.h"

namespace kiln::lower {

Status lower_gemma3(Lowering& L) {
  ir::Builder& b = L.b();
  const Hparams& hp = L.hp();
  const gguf::Metadata& md = L.metadata();
  const int64_t E = hp.n_embd, F = hp.n_ff;
  KILN_ASSIGN_OR_RETURN(uint64_t window, md.get_uint_or("gemma3.attention.sliding_window", 0));
  KILN_ASSIGN_OR_RETURN(double swa_base, md.get_float_or("gemma3.rope.freq_base_swa", 10000.0));
  KILN_ASSIGN_OR_RETURN(double softcap, md.get_float_or("gemma3.final_logit_softcapping", 0.0));
  KILN_ASSIGN_OR_RETURN(double attn_softcap, md.get_float_or("gemma3.attn_logit_softcapping", 0.0));
  constexpr int kPattern = 6;  // llama.cpp: set_swa_pattern(6)

  ir::Value* embd = L.weight("token_embd.weight", {hp.n_vocab, E});
  ir::Value* h = b.named("embd").get_rows(embd, L.tokens());
  h = b.scale(h, std::sqrt(double(E)));
  for (int il = 0; il < hp.n_layer; ++il) {
    const std::string blk = "blk." + std::to_string(il) + ".";
    const bool local = window > 0 && il % kPattern < kPattern - 1;
    Lowering::HeadPrep prep;
    prep.q_norm = "attn_q_norm.weight";
    prep.k_norm = "attn_k_norm.weight";
    prep.rope_mode = "neox";
    prep.rope_base = local ? swa_base : hp.rope_base;
    prep.rope_scale = local ? 1.0 : hp.rope_scale;
    prep.q_scale = 1.0 / std::sqrt(double(hp.head_dim_k));
    prep.kq_scale = 1.0;
    prep.window = local ? int64_t(window) : 0;
    prep.softcap = attn_softcap;

    ir::Value* x = L.rms_norm_w(h, blk + "attn_norm.weight");
    ir::Value* q = L.linear(x, blk + "attn_q.weight", hp.n_head * hp.head_dim_k);
    ir::Value* k = L.linear(x, blk + "attn_k.weight", hp.n_head_kv * hp.head_dim_k);
    ir::Value* v = L.linear(x, blk + "attn_v.weight", hp.n_head_kv * hp.head_dim_v);
    ir::Value* a = L.attention(il, q, k, v, prep);
    a = L.linear(a, blk + "attn_output.weight", E);
    a = L.rms_norm_w(a, blk + "post_attention_norm.weight");
    h = b.named("blk" + std::to_string(il) + ".resid").add(h, a);

    x = L.rms_norm_w(h, blk + "ffn_norm.weight");
    ir::Value* g = L.linear(x, blk + "ffn_gate.weight", F);
    ir::Value* u = L.linear(x, blk + "ffn_up.weight", F);
    ir::Value* f = L.linear(b.mul(b.gelu(g, "tanh_f16"), u), blk + "ffn_down.weight", E);
    f = L.rms_norm_w(f, blk + "post_ffw_norm.weight");
    h = b.named("blk" + std::to_string(il) + ".out").add(h, f);
  }
  L.head(h, softcap);
  return Status::Ok();
}

}  // namespace kiln::lower
