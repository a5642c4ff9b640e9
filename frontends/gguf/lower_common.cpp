#include "frontends/gguf/lower_common.h"

#include <algorithm>
#include <cmath>

#include "ir/verifier.h"

namespace kiln::lower {

using ir::Shape;
using ir::Value;

Result<Hparams> read_hparams(const gguf::GgufFile& f, const std::string& arch) {
  const gguf::Metadata& md = f.metadata();
  Hparams hp;
  hp.arch = arch;
  auto key = [&](const char* k) { return arch + "." + k; };
  KILN_ASSIGN_OR_RETURN(uint64_t n_layer, md.get_uint(key("block_count")));
  KILN_ASSIGN_OR_RETURN(uint64_t n_embd, md.get_uint(key("embedding_length")));
  KILN_ASSIGN_OR_RETURN(uint64_t n_head, md.get_uint(key("attention.head_count")));
  KILN_ASSIGN_OR_RETURN(uint64_t n_head_kv, md.get_uint_or(key("attention.head_count_kv"), n_head));
  KILN_ASSIGN_OR_RETURN(uint64_t n_ff, md.get_uint(key("feed_forward_length")));
  KILN_ASSIGN_OR_RETURN(uint64_t n_ctx, md.get_uint(key("context_length")));
  KILN_ASSIGN_OR_RETURN(double eps, md.get_float(key("attention.layer_norm_rms_epsilon")));
  if (n_layer == 0 || n_embd == 0 || n_head == 0 || n_head_kv == 0 || n_head % n_head_kv)
    return make_error(f.path(), ": inconsistent attention hyperparameters (", n_head, " heads, ",
                      n_head_kv, " kv heads, ", n_layer, " layers)");
  if (n_layer > 4096 || n_embd > (1 << 20) || n_head > 4096)
    return make_error(f.path(), ": implausible hyperparameters");
  KILN_ASSIGN_OR_RETURN(uint64_t dk, md.get_uint_or(key("attention.key_length"), n_embd / n_head));
  KILN_ASSIGN_OR_RETURN(uint64_t dv, md.get_uint_or(key("attention.value_length"), dk));
  KILN_ASSIGN_OR_RETURN(uint64_t n_rot, md.get_uint_or(key("rope.dimension_count"), dk));
  KILN_ASSIGN_OR_RETURN(double base, md.get_float_or(key("rope.freq_base"), 10000.0));
  // Linear rope scaling divides positions by the factor.
  KILN_ASSIGN_OR_RETURN(std::string scaling, md.get_string_or(key("rope.scaling.type"), "none"));
  KILN_ASSIGN_OR_RETURN(double factor, md.get_float_or(key("rope.scaling.factor"), 0.0));
  if (scaling != "none" && scaling != "linear")
    return make_error(f.path(), ": rope scaling '", scaling, "' is not supported (none, linear)");
  auto embd = f.tensor("token_embd.weight");
  if (!embd.ok()) return embd.error();
  if ((*embd)->dims.size() != 2 || (*embd)->dims[0] != n_embd)
    return make_error(f.path(), ": token_embd.weight has shape ", (*embd)->shape_string(),
                      ", expected [", n_embd, ", vocab]");
  hp.n_layer = int64_t(n_layer);
  hp.n_embd = int64_t(n_embd);
  hp.n_head = int64_t(n_head);
  hp.n_head_kv = int64_t(n_head_kv);
  hp.n_ff = int64_t(n_ff);
  hp.n_ctx_train = int64_t(n_ctx);
  hp.eps = eps;
  hp.head_dim_k = int64_t(dk);
  hp.head_dim_v = int64_t(dv);
  hp.n_rot = int64_t(n_rot);
  hp.rope_base = base;
  hp.rope_scale = (scaling == "linear" && factor > 0) ? 1.0 / factor : 1.0;
  hp.n_vocab = int64_t((*embd)->dims[1]);
  if (hp.n_rot > hp.head_dim_k || hp.n_rot % 2)
    return make_error(f.path(), ": rope.dimension_count ", n_rot, " invalid for head size ", dk);
  return hp;
}

Lowering::Lowering(const gguf::GgufFile& f, const GraphSpec& spec, Hparams hp, ir::Graph& g)
    : f_(f), spec_(spec), hp_(std::move(hp)), b_(g) {
  ctx_ = spec_.ctx > 0 ? spec_.ctx : std::min<int64_t>(hp_.n_ctx_train, 4096);
  int64_t B = spec_.batch, T = spec_.tokens;
  tokens_ = b_.input("tokens", {DType::I32, {B, T}});
  pos_ = b_.input("pos", {DType::I32, {B, T}});
  seq_ = b_.input("seq", {DType::I32, {B}});
}

Value* Lowering::optional_weight(const std::string& name, Shape expect) {
  if (!f_.find_tensor(name)) return nullptr;
  return weight(name, std::move(expect));
}

Value* Lowering::weight(const std::string& name, Shape expect) {
  const gguf::TensorInfo* t = f_.find_tensor(name);
  if (!t) {
    if (bad_.ok()) bad_ = make_error(f_.path(), ": missing tensor ", name);
    return nullptr;
  }
  Shape shape(t->dims.rbegin(), t->dims.rend());
  if (auto it = weights_.find(name); it != weights_.end() && (expect.empty() || shape == expect))
    return it->second;  // each GGUF tensor is declared once (tied embeddings use it twice)
  if (!expect.empty() && shape != expect) {
    if (bad_.ok())
      bad_ = make_error(f_.path(), ": tensor ", name, " has shape ", ir::shape_str(shape),
                        ", expected ", ir::shape_str(expect));
    return nullptr;
  }
  Value* w = b_.weight(name, {t->type, shape});
  if (w) weights_[name] = w;
  return w;
}

// The activation precision llama.cpp's CPU backend uses with each weight type (its
// vec_dot_type): matching it makes kiln's greedy tokens equal llama.cpp's.
DType ggml_act_type(DType w) {
  switch (w) {
    case DType::Q4_0:
    case DType::Q5_0:
    case DType::Q8_0:
    case DType::IQ4_NL:
      return DType::Q8_0;
    case DType::Q4_1:
    case DType::Q5_1:
      return DType::Q8_1;
    case DType::Q2_K:
    case DType::Q3_K:
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K:
    case DType::IQ4_XS:
      return DType::Q8_K;
    case DType::F16:
      return DType::F16;
    case DType::BF16:
      return DType::BF16;
    default:
      return DType::F32;
  }
}

// llama.cpp's CPU attention (without flash attention) multiplies an f16 cache by q and by the
// probabilities converted to f16.
static DType ggml_attention_act(DType kv_type) {
  return kv_type == DType::F16 ? DType::F16 : DType::F32;
}

Value* Lowering::matmul(Value* x, Value* w) {
  if (!x || !w) return nullptr;
  DType act = ggml_act_type(w->type.dtype);
  if (act != DType::F32 && !row_bytes(act, uint64_t(x->type.dim(-1)))) act = DType::F32;
  return b_.mul_mat(x, w, act);
}

Value* Lowering::linear(Value* x, const std::string& weight_name, int64_t out,
                        const std::string& bias_name) {
  if (!x) return nullptr;
  int64_t in = x->type.dim(-1);
  Value* y = matmul(x, weight(weight_name, {out, in}));
  if (!bias_name.empty())
    if (Value* bias = optional_weight(bias_name, {out})) y = b_.add(y, bias);
  return y;
}

Value* Lowering::rms_norm_w(Value* x, const std::string& weight_name) {
  if (!x) return nullptr;
  return b_.mul(b_.rms_norm(x, hp_.eps), weight(weight_name, {x->type.dim(-1)}));
}

Value* Lowering::attention(int il, Value* q, Value* k, Value* v, const HeadPrep& p) {
  if (!q || !k || !v) return nullptr;
  const int64_t B = spec_.batch, T = spec_.tokens;
  const int64_t Hq = hp_.n_head, Hkv = hp_.n_head_kv, Dk = hp_.head_dim_k, Dv = hp_.head_dim_v;
  const int64_t S = spec_.slots > 0 ? spec_.slots : spec_.batch;
  const std::string blk = "blk." + std::to_string(il) + ".";
  q = b_.reshape(q, {B, T, Hq, Dk});
  k = b_.reshape(k, {B, T, Hkv, Dk});
  v = b_.reshape(v, {B, T, Hkv, Dv});
  if (!p.q_norm.empty()) q = b_.mul(b_.rms_norm(q, hp_.eps), weight(blk + p.q_norm, {Dk}));
  if (!p.k_norm.empty()) k = b_.mul(b_.rms_norm(k, hp_.eps), weight(blk + p.k_norm, {Dk}));
  q = b_.rope(q, pos_, p.rope_mode, hp_.n_rot, p.rope_base, p.rope_scale);
  k = b_.rope(k, pos_, p.rope_mode, hp_.n_rot, p.rope_base, p.rope_scale);
  if (p.q_scale != 1.0) q = b_.scale(q, p.q_scale);
  std::string L = std::to_string(il);
  Value* kc = b_.state("cache_k." + L, {spec_.kv_type, {S, ctx_, Hkv, Dk}});
  Value* vc = b_.state("cache_v." + L, {spec_.kv_type, {S, ctx_, Hkv, Dv}});
  kc = b_.named("blk" + L + ".kc").kv_write(kc, k, pos_, seq_);
  vc = b_.named("blk" + L + ".vc").kv_write(vc, v, pos_, seq_);
  Value* a = b_.named("blk" + L + ".attn")
                 .attention(q, kc, vc, pos_, seq_, p.kq_scale, p.window, p.softcap,
                            ggml_attention_act(spec_.kv_type));
  return b_.reshape(a, {B, T, Hq * Dv});
}

void Lowering::head(Value* h, double final_softcap) {
  if (!h) return;
  const int64_t B = spec_.batch, T = spec_.tokens, E = hp_.n_embd;
  h = b_.reshape(h, {B * T, E});
  if (T > 1 && !spec_.all_logits) {
    // Only the rows the caller asks for (the last real token of each sequence).
    Value* rows = b_.input("rows", {DType::I32, {B}});
    h = b_.get_rows(h, rows);
  }
  h = rms_norm_w(h, "output_norm.weight");
  Value* w = optional_weight("output.weight", {hp_.n_vocab, E});
  if (!w) w = weight("token_embd.weight", {hp_.n_vocab, E});  // tied embeddings
  Value* logits = matmul(h, w);
  if (final_softcap > 0)
    logits = b_.scale(b_.tanh(b_.scale(logits, 1.0 / final_softcap)), final_softcap);
  b_.output(logits, "logits");
}

Status Lowering::finish() {
  if (!bad_.ok()) return bad_;
  if (!b_.ok()) return b_.status();
  return ir::verify(b_.graph());
}

}  // namespace kiln::lower
