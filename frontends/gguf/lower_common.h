// Pieces shared by the architecture lowerings: hyperparameters read from GGUF metadata,
// weights declared from GGUF tensor infos, the graph's inputs and caches, and the attention,
// feed-forward and output-head blocks that the families compose differently.
#pragma once

#include <string>
#include <unordered_map>

#include "frontends/gguf/gguf_file.h"
#include "frontends/gguf/lower.h"
#include "ir/builder.h"

namespace kiln::lower {

struct Hparams {
  std::string arch;
  int64_t n_layer = 0, n_embd = 0, n_head = 0, n_head_kv = 0, n_ff = 0, n_vocab = 0;
  int64_t head_dim_k = 0, head_dim_v = 0;  // per head
  int64_t n_rot = 0;                       // rotary dims per head
  int64_t n_ctx_train = 0;
  double eps = 1e-5;
  double rope_base = 10000.0, rope_scale = 1.0;
};

// Reads the hyperparameters every family shares ("ARCH.block_count", ...). Errors name the key.
Result<Hparams> read_hparams(const gguf::GgufFile& f, const std::string& arch);

// The state of one lowering: builder, hyperparameters, spec and the standard inputs.
class Lowering {
 public:
  Lowering(const gguf::GgufFile& f, const GraphSpec& spec, Hparams hp, ir::Graph& g);

  ir::Builder& b() { return b_; }
  const Hparams& hp() const { return hp_; }
  const GraphSpec& spec() const { return spec_; }
  const gguf::Metadata& metadata() const { return f_.metadata(); }
  int64_t ctx() const { return ctx_; }

  // Declares a GGUF tensor as a weight, checking its IR shape ([ne1, ne0] of ggml dims)
  // against `expect` when given. nullptr (and a sticky builder error) when absent.
  ir::Value* weight(const std::string& name, ir::Shape expect = {});
  // Like weight() but returns nullptr without an error when the tensor is absent.
  ir::Value* optional_weight(const std::string& name, ir::Shape expect = {});
  bool has_tensor(const std::string& name) const { return f_.find_tensor(name) != nullptr; }

  ir::Value* tokens() const { return tokens_; }
  ir::Value* pos() const { return pos_; }
  ir::Value* seq() const { return seq_; }

  // x · w (+ bias when the tensor exists): the dense layers of every family.
  ir::Value* linear(ir::Value* x, const std::string& weight_name, int64_t out,
                    const std::string& bias_name = "");
  // x · wᵀ with the activation precision llama.cpp uses for w's type (ggml_act_type).
  ir::Value* matmul(ir::Value* x, ir::Value* w);
  // rms_norm(x) · w.
  ir::Value* rms_norm_w(ir::Value* x, const std::string& weight_name);
  // Attention of layer `il` on already-projected q [B,T,Hq*Dk], k, v [B,T,Hkv*Dk/Dv]:
  // reshapes to heads, applies `prep` to q and k per head (norms, rope), writes the cache,
  // attends and returns [B, T, Hq*Dv].
  struct HeadPrep {
    std::string q_norm, k_norm;  // per-head rms_norm weights (qwen3, gemma3); "" for none
    std::string rope_mode = "normal";
    double rope_base = 10000.0, rope_scale = 1.0;
    double q_scale = 1.0;   // applied to q after rope (gemma3)
    double kq_scale = 1.0;  // softmax scale
    int64_t window = 0;     // sliding window (0: none)
    double softcap = 0.0;
  };
  ir::Value* attention(int il, ir::Value* q, ir::Value* k, ir::Value* v, const HeadPrep& prep);
  // Final norm and LM head over the rows whose logits are wanted; adds the `logits` output.
  void head(ir::Value* h, double final_softcap = 0.0);

  Status finish();  // builder status, then verification

 private:
  const gguf::GgufFile& f_;
  GraphSpec spec_;
  Hparams hp_;
  ir::Builder b_;
  int64_t ctx_ = 0;
  ir::Value* tokens_ = nullptr;
  ir::Value* pos_ = nullptr;
  ir::Value* seq_ = nullptr;
  std::unordered_map<std::string, ir::Value*> weights_;
  Status bad_;  // first lowering error (missing or misshapen tensor)
};

DType ggml_act_type(DType weight_type);

// Per-family entry points (one file each).
Status lower_llama(Lowering& L);
Status lower_qwen2(Lowering& L);
Status lower_qwen3(Lowering& L);
Status lower_gemma3(Lowering& L);

}  // namespace kiln::lower
