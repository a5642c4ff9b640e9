// The model shapes `kiln make-model` writes with random weights: the two real models kiln is
// tested against (same shapes and hyperparameters as the real GGUF files) and tiny models of every
// architecture kiln lowers, small enough for unit tests of every kernel at odd sizes.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace kiln::gguf {

// Which tokenizer family an architecture's real models use; make-model writes a small valid vocab
// of that family when no --tokenizer-from is given.
enum class VocabKind {
  kGpt2Bpe,        // tokenizer.ggml.model "gpt2": byte-level BPE with merges
  kSentencePiece,  // tokenizer.ggml.model "llama": SentencePiece pieces with scores, byte fallback
};

struct ModelPreset {
  std::string_view name;  // "tiny-llama"
  std::string_view arch;  // general.architecture: "llama", "qwen2", "qwen3", "gemma3"
  std::string_view summary;
  uint32_t n_layer;
  uint32_t n_embd;
  uint32_t n_head;
  uint32_t n_head_kv;
  uint32_t head_dim;  // per head, for keys and values alike
  uint32_t n_ff;
  // Rows of token_embd: the generated vocab is padded with unused tokens up to this size, so a
  // full-size preset has the real embedding shape. 0 means the generated vocab's own size.
  uint32_t n_vocab;
  uint32_t context_length;
  float rope_freq_base;
  float norm_eps;
  uint32_t sliding_window;  // gemma3's attention.sliding_window (0 for other architectures)
  bool tied_embeddings;     // no output.weight: the logits reuse token_embd
};

// What an architecture's layers hold and which keys its GGUF files carry (llama.cpp's names).
struct ArchTraits {
  std::string_view arch;
  VocabKind vocab;
  bool qkv_bias;        // attn_{q,k,v}.bias (qwen2)
  bool qk_norm;         // attn_q_norm / attn_k_norm over each head (qwen3, gemma3)
  bool post_norms;      // post_attention_norm and post_ffw_norm (gemma3)
  bool head_dim_keys;   // {arch}.attention.key_length / value_length
  bool rope_dim_key;    // {arch}.rope.dimension_count
  bool vocab_size_key;  // {arch}.vocab_size
};

const std::vector<ModelPreset>& model_presets();
const ModelPreset* find_preset(std::string_view name);
// Traits of one of the architectures above; nullptr for any other.
const ArchTraits* arch_traits(std::string_view arch);

}  // namespace kiln::gguf
