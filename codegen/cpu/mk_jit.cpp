// jit_tiles: builds every tile set of one SIMD variant and keeps the generators (which own the
// executable memory) alive for the life of the process.
#if defined(KILN_WITH_XBYAK)

#include <exception>
#include <memory>
#include <mutex>
#include <vector>

#include "codegen/cpu/mk_jit_base.h"

namespace kiln::mk::detail {

Status jit_tiles(Isa isa, TileSet sets[kNumTypes], PackedSet packed[kNumTypes]) {
  static std::mutex mu;
  static std::vector<std::unique_ptr<TileGen>> keep;
  static std::vector<std::unique_ptr<PackedGen>> keep_packed;
  std::lock_guard<std::mutex> lock(mu);
  try {
    for (int t = 0; t < kNumTypes; ++t) {
      const DType type = type_at(t);
      std::unique_ptr<TileGen> gen = type == DType::Q4_K || type == DType::Q6_K
                                         ? make_kquant_gen(isa, type)
                                         : make_legacy_gen(isa, type);
      gen->build(sets[t]);
      gen->setProtectModeRE();
      keep.push_back(std::move(gen));
      // ggml's summation order where it is generated (AVX-512 VNNI), unless KILN_MK_ORDER=fast;
      // K-quants have packed tiles only in that order (elsewhere: unpacked per group).
      const bool ggml = isa == Isa::kAvx512Vnni && !fast_order_requested();
      const bool kquant = type == DType::Q4_K || type == DType::Q6_K;
      if (packable(type) && (ggml || !kquant)) {
        std::unique_ptr<PackedGen> pg = kquant ? make_packed_kquant_gen(isa, type)
                                        : ggml ? make_packed_ggml_gen(isa, type)
                                               : make_packed_gen(isa, type);
        pg->build(packed[t]);
        pg->setProtectModeRE();
        keep_packed.push_back(std::move(pg));
      }
    }
  } catch (const std::exception& e) {
    return make_error("microkernels: JIT for ", isa_name(isa), " failed: ", e.what());
  }
  return Status::Ok();
}

}  // namespace kiln::mk::detail

#endif  // KILN_WITH_XBYAK
