// Qwen family. Same block as llama (lower_llama.cpp) with rotary embedding in NeoX mode
// (rotate-half pairs i, i + d/2); qwen2 adds q/k/v biases, qwen3 drops them and normalizes q and
// k per head (RMSNorm over the head dimension) before the rotation.
#include "frontends/gguf/lower_common.h"

namespace kiln::lower {

Status lower_llama_like(Lowering& L, const std::string& rope_mode, bool biases, bool qk_norm);

Status lower_qwen2(Lowering& L) {
  return lower_llama_like(L, "neox", true, false);
}
Status lower_qwen3(Lowering& L) {
  return lower_llama_like(L, "neox", false, true);
}

}  // namespace kiln::lower
