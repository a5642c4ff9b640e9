#include "frontends/gguf/model_presets.h"

namespace kiln::gguf {
namespace {

// The real presets copy the hyperparameters of the real files (kiln inspect on
// SmolLM2-135M-Instruct.Q4_1.gguf and gemma-3-270m-q4_k_m.gguf).
//
// The tiny presets are sized so every kernel meets odd shapes: head dims 32 and 64, grouped-query
// ratios 2 and 3, a query width that differs from n_embd (qwen3, gemma3, as in the real Qwen3 and
// Gemma 3), and ffn widths that are whole q4_0/q8_0 blocks (32) but not whole K-quant blocks (256),
// so make-model's per-tensor fallback is exercised; tiny-qwen3 has 256-wide rows so that K-quants
// are stored too. Each is at most a few MB in f32.
//
// tiny-gemma3 has 6 layers, not 2: llama.cpp hard-codes Gemma 3's local/global pattern (every 6th
// layer is global, LLAMA_SWA_TYPE_STANDARD with set_swa_pattern(6)) and reads no key for it, so
// with 2 layers both would be local. With 6, layers 0-4 are sliding-window (window 8, shorter
// than any test context) and layer 5 is global, the same as in the real model.
const std::vector<ModelPreset> kPresets = {
    {"smollm2-135m", "llama", "SmolLM2-135M shapes (30 layers, tied embeddings)", 30, 576, 9, 3, 64,
     1536, 49152, 8192, 100000.0f, 1e-5f, 0, true},
    {"gemma3-270m", "gemma3", "Gemma 3 270M shapes (18 layers, sliding window 512)", 18, 640, 4, 1,
     256, 2048, 262144, 32768, 1000000.0f, 1e-6f, 512, true},
    {"tiny-llama", "llama", "2-layer llama, head dim 32, GQA 2, separate output matrix", 2, 128, 4,
     2, 32, 160, 0, 2048, 10000.0f, 1e-5f, 0, false},
    {"tiny-qwen2", "qwen2", "2-layer qwen2 with q/k/v biases, head dim 64, GQA 2", 2, 128, 2, 1, 64,
     224, 0, 2048, 1000000.0f, 1e-6f, 0, true},
    {"tiny-qwen3", "qwen3", "2-layer qwen3 with q/k norms, 6 heads of 64 over embd 256, GQA 3", 2,
     256, 6, 2, 64, 512, 0, 2048, 1000000.0f, 1e-6f, 0, true},
    {"tiny-gemma3", "gemma3", "6-layer gemma3, window 8, layers 0-4 local and 5 global", 6, 128, 4,
     1, 64, 160, 0, 2048, 1000000.0f, 1e-6f, 8, true},
};

const ArchTraits kArchs[] = {
    // arch     vocab                       bias   qk_norm post   hd_keys rope_dim vocab_size
    {"llama", VocabKind::kGpt2Bpe, false, false, false, false, true, true},
    {"qwen2", VocabKind::kGpt2Bpe, true, false, false, false, false, false},
    {"qwen3", VocabKind::kGpt2Bpe, false, true, false, true, false, false},
    {"gemma3", VocabKind::kSentencePiece, false, true, true, true, false, false},
};

}  // namespace

const std::vector<ModelPreset>& model_presets() {
  return kPresets;
}

const ModelPreset* find_preset(std::string_view name) {
  for (const ModelPreset& p : kPresets)
    if (p.name == name) return &p;
  return nullptr;
}

const ArchTraits* arch_traits(std::string_view arch) {
  for (const ArchTraits& a : kArchs)
    if (a.arch == arch) return &a;
  return nullptr;
}

}  // namespace kiln::gguf
