// Activation quantizers: f32 rows to the kernels' Q8_0 / Q8_1 / Q8_K row layout (mk_internal.h).
// The scalar versions call ggml's reference block quantizers (quant_blocks.h); the AVX2 and
// AVX-512 versions do the same arithmetic eight or sixteen lanes at a time and are bit-exact with
// them (tests/microkernels_test.cpp): the same float products, the same rounding (roundf's "half
// away from zero" for Q8_0/Q8_1, nearest-even for Q8_K), and the scale's f16 rounding done by the
// same scalar code.
//
// The "ggml_x86" flavor reproduces ggml-cpu's own AVX quantize_row_q8_0 / q8_1, which is what
// llama.cpp runs on x86: the multiplier is 127/amax instead of 1/(amax/127), and rounding is to
// nearest even. The two differ in the last bit of a few quants per thousand blocks.
#include <cmath>
#include <cstring>

#include "codegen/cpu/mk_internal.h"
#include "frontends/gguf/quant_blocks.h"
#include "ir/half.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define KILN_MK_X86 1
#endif

namespace kiln::mk::detail {
namespace {

using namespace kiln::quant;

struct Out {
  int8_t* q;
  uint8_t* aux;
  size_t aux_bytes;
  void put_f(int block, int field, float v) const {
    std::memcpy(aux + size_t(block) * aux_bytes + 4 * field, &v, 4);
  }
  void put_i(int block, int field, int32_t v) const {
    std::memcpy(aux + size_t(block) * aux_bytes + 4 * field, &v, 4);
  }
};

Out out_row(DType act, void* xq, int K) {
  const ActLayout l = act_layout(act, K);
  auto* p = static_cast<uint8_t*>(xq);
  return {reinterpret_cast<int8_t*>(p), p + l.aux_off, l.aux_bytes};
}

// Stores one 32-block's aux record (mk_internal.h) from the f32 d and the sum of the quants;
// `dh` and `sh` are d and d * sum rounded to f16 and widened back.
template <bool kQ81>
__attribute__((always_inline)) inline void put_aux(const Out& o, int b, float dh, float sh,
                                                   int sum) {
  const float s = kQ81 ? sh : 0.0f;
  o.put_f(b, 0, dh);
  o.put_f(b, 1, s * 0.125f);
  o.put_i(b, 2, -sum);
  o.put_f(b, 3, s);
}

int sum32(const int8_t* q) {
  int s = 0;
  for (int j = 0; j < 32; ++j) s += q[j];
  return s;
}

// ---- scalar

template <bool kQ81>
void quant_legacy_ref(const float* x, void* xq, int K) {
  const Out o = out_row(kQ81 ? DType::Q8_1 : DType::Q8_0, xq, K);
  for (int b = 0; b < K / 32; ++b) {
    if (kQ81) {
      BlockQ8_1 blk;
      quantize_block(x + 32 * b, &blk);
      std::memcpy(o.q + 32 * b, blk.qs, 32);
      o.put_f(b, 0, f16_to_f32(blk.d));
      o.put_f(b, 1, f16_to_f32(blk.s) * 0.125f);
      o.put_i(b, 2, -sum32(blk.qs));
      o.put_f(b, 3, f16_to_f32(blk.s));
    } else {
      BlockQ8_0 blk;
      quantize_block(x + 32 * b, &blk);
      std::memcpy(o.q + 32 * b, blk.qs, 32);
      o.put_f(b, 0, f16_to_f32(blk.d));
      o.put_f(b, 1, 0.0f);
      o.put_i(b, 2, -sum32(blk.qs));
      o.put_f(b, 3, 0.0f);
    }
  }
}

template <bool kQ81>
void quant_legacy_x86_scalar(const float* x, void* xq, int K) {
  const Out o = out_row(kQ81 ? DType::Q8_1 : DType::Q8_0, xq, K);
  for (int b = 0; b < K / 32; ++b) {
    const float* xb = x + 32 * b;
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(xb[j]));
    const float d = amax / 127.f;
    const float id = amax != 0.0f ? 127.f / amax : 0.0f;
    int sum = 0;
    for (int j = 0; j < 32; ++j) {
      const int q = int(std::nearbyint(xb[j] * id));  // the default rounding: nearest even
      o.q[32 * b + j] = int8_t(q);
      sum += q;
    }
    put_aux<kQ81>(o, b, f16_to_f32(f32_to_f16(d)), f16_to_f32(f32_to_f16(float(sum) * d)), sum);
  }
}

void put_q8k(const Out& o, int b, const BlockQ8_K& blk) {
  std::memcpy(o.q + 256 * b, blk.qs, 256);
  uint8_t* a = o.aux + size_t(b) * o.aux_bytes;
  std::memcpy(a, blk.bsums, 32);
  std::memcpy(a + 32, &blk.d, 4);
}

void quant_q8k_ref(const float* x, void* xq, int K) {
  const Out o = out_row(DType::Q8_K, xq, K);
  for (int b = 0; b < K / 256; ++b) {
    BlockQ8_K blk;
    quantize_block(x + 256 * b, &blk);
    put_q8k(o, b, blk);
  }
}

#if defined(KILN_MK_X86)
// ---- AVX2

#define KILN_AVX2 __attribute__((target("avx2,fma,f16c")))

// F16C rounds to nearest even like ir/half.h's f32_to_f16 (also to subnormal halves and to inf).
// Scalar SSE code called out of line from here would run with the upper vector state dirty
// (GCC adds no vzeroupper before such calls), which once made Q8_1 ten times slower: keep the
// per-block scalar work inline.
KILN_AVX2 __attribute__((always_inline)) inline float round_f16c(float v) {
  return _cvtsh_ss(_cvtss_sh(v, _MM_FROUND_TO_NEAREST_INT));
}

KILN_AVX2 inline float hmax8(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

KILN_AVX2 inline int hsum8i(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

// roundf: truncate, then step away from zero when the dropped fraction is at least one half
// (v - trunc(v) is exact for |v| < 2^23).
KILN_AVX2 inline __m256 round_away8(__m256 v) {
  const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m256 sign = _mm256_and_ps(v, _mm256_set1_ps(-0.0f));
  const __m256 frac = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), _mm256_sub_ps(v, t));
  const __m256 ge = _mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
  return _mm256_add_ps(t, _mm256_and_ps(ge, _mm256_or_ps(sign, _mm256_set1_ps(1.0f))));
}

// Packs 32 int32 in [-128, 127] (four vectors, in order) into 32 bytes.
KILN_AVX2 inline __m256i pack32(__m256i a, __m256i b, __m256i c, __m256i d) {
  const __m256i ab = _mm256_packs_epi32(a, b), cd = _mm256_packs_epi32(c, d);
  return _mm256_permutevar8x32_epi32(_mm256_packs_epi16(ab, cd),
                                     _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

template <bool kQ81, bool kX86>
KILN_AVX2 void quant_legacy_avx2(const float* x, void* xq, int K) {
  const Out o = out_row(kQ81 ? DType::Q8_1 : DType::Q8_0, xq, K);
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  for (int b = 0; b < K / 32; ++b) {
    const float* xb = x + 32 * b;
    __m256 v[4];
    __m256 m = _mm256_setzero_ps();
    for (int i = 0; i < 4; ++i) {
      v[i] = _mm256_loadu_ps(xb + 8 * i);
      m = _mm256_max_ps(m, _mm256_and_ps(v[i], abs_mask));
    }
    const float amax = hmax8(m);
    float d, id;
    if (kX86) {
      d = amax / 127.f;
      id = amax != 0.0f ? 127.f / amax : 0.0f;
    } else {
      d = amax / 127;
      id = d != 0.0f ? 1.0f / d : 0.0f;
    }
    const __m256 mul = _mm256_set1_ps(id);
    __m256i q[4];
    for (int i = 0; i < 4; ++i) {
      const __m256 s = _mm256_mul_ps(v[i], mul);
      q[i] = _mm256_cvttps_epi32(
          kX86 ? _mm256_round_ps(s, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
               : round_away8(s));
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(o.q + 32 * b), pack32(q[0], q[1], q[2], q[3]));
    const int sum =
        hsum8i(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
    put_aux<kQ81>(o, b, round_f16c(d), round_f16c(float(sum) * d), sum);
  }
}

KILN_AVX2 void quant_q8k_avx2(const float* x, void* xq, int K) {
  const Out o = out_row(DType::Q8_K, xq, K);
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  for (int b = 0; b < K / 256; ++b) {
    const float* xb = x + 256 * b;
    __m256 m = _mm256_setzero_ps();
    for (int i = 0; i < 32; ++i)
      m = _mm256_max_ps(m, _mm256_and_ps(_mm256_loadu_ps(xb + 8 * i), abs_mask));
    const float amax = hmax8(m);
    BlockQ8_K blk;
    if (amax == 0.0f) {
      std::memset(&blk, 0, sizeof(blk));
      put_q8k(o, b, blk);
      continue;
    }
    // The reference keeps the sign of the first element of largest magnitude.
    const __m256 vmax = _mm256_set1_ps(amax);
    int first = 0;
    for (int i = 0; i < 32; ++i) {
      const __m256 a = _mm256_and_ps(_mm256_loadu_ps(xb + 8 * i), abs_mask);
      const int mask = _mm256_movemask_ps(_mm256_cmp_ps(a, vmax, _CMP_EQ_OQ));
      if (mask) {
        first = 8 * i + __builtin_ctz(unsigned(mask));
        break;
      }
    }
    const float iscale = -127.f / xb[first];
    const __m256 mul = _mm256_set1_ps(iscale);
    const __m256i top = _mm256_set1_epi32(127);
    for (int g = 0; g < 8; ++g) {  // 32 elements: two bsums
      __m256i q[4];
      for (int i = 0; i < 4; ++i) {
        // cvtps rounds to nearest even, like ggml's nearest_int.
        q[i] = _mm256_min_epi32(
            _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xb + 32 * g + 8 * i), mul)), top);
      }
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(blk.qs + 32 * g),
                          pack32(q[0], q[1], q[2], q[3]));
      blk.bsums[2 * g] = int16_t(hsum8i(_mm256_add_epi32(q[0], q[1])));
      blk.bsums[2 * g + 1] = int16_t(hsum8i(_mm256_add_epi32(q[2], q[3])));
    }
    blk.d = 1 / iscale;
    put_q8k(o, b, blk);
  }
}

// ---- AVX-512

// GCC 12's unmasked AVX-512 intrinsics pass _mm512_undefined_*() as the merge source, and -O3
// reports that as "may be used uninitialized" where they are inlined (GCC bug 105593, fixed in
// GCC 13). The warning is off for the AVX-512 functions only, not for the code above.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#define KILN_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))

KILN_AVX512 inline __m512 round_away16(__m512 v) {
  const __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __mmask16 ge =
      _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_sub_ps(v, t)), _mm512_set1_ps(0.5f), _CMP_GE_OQ);
  const __m512 one = _mm512_castsi512_ps(
      _mm512_or_si512(_mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(int(0x80000000u))),
                      _mm512_castps_si512(_mm512_set1_ps(1.0f))));
  return _mm512_mask_add_ps(t, ge, t, one);
}

template <bool kQ81, bool kX86>
KILN_AVX512 void quant_legacy_avx512(const float* x, void* xq, int K) {
  const Out o = out_row(kQ81 ? DType::Q8_1 : DType::Q8_0, xq, K);
  for (int b = 0; b < K / 32; ++b) {
    const float* xb = x + 32 * b;
    const __m512 v0 = _mm512_loadu_ps(xb), v1 = _mm512_loadu_ps(xb + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
    float d, id;
    if (kX86) {
      d = amax / 127.f;
      id = amax != 0.0f ? 127.f / amax : 0.0f;
    } else {
      d = amax / 127;
      id = d != 0.0f ? 1.0f / d : 0.0f;
    }
    const __m512 mul = _mm512_set1_ps(id);
    __m512 s0 = _mm512_mul_ps(v0, mul), s1 = _mm512_mul_ps(v1, mul);
    if (kX86) {
      s0 = _mm512_roundscale_ps(s0, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      s1 = _mm512_roundscale_ps(s1, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    } else {
      s0 = round_away16(s0);
      s1 = round_away16(s1);
    }
    const __m512i q0 = _mm512_cvttps_epi32(s0), q1 = _mm512_cvttps_epi32(s1);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(o.q + 32 * b), _mm512_cvtsepi32_epi8(q0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(o.q + 32 * b + 16), _mm512_cvtsepi32_epi8(q1));
    const int sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
    put_aux<kQ81>(o, b, round_f16c(d), round_f16c(float(sum) * d), sum);
  }
}

KILN_AVX512 void quant_q8k_avx512(const float* x, void* xq, int K) {
  const Out o = out_row(DType::Q8_K, xq, K);
  for (int b = 0; b < K / 256; ++b) {
    const float* xb = x + 256 * b;
    __m512 m = _mm512_setzero_ps();
    for (int i = 0; i < 16; ++i) m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_loadu_ps(xb + 16 * i)));
    const float amax = _mm512_reduce_max_ps(m);
    BlockQ8_K blk;
    if (amax == 0.0f) {
      std::memset(&blk, 0, sizeof(blk));
      put_q8k(o, b, blk);
      continue;
    }
    const __m512 vmax = _mm512_set1_ps(amax);
    int first = 0;
    for (int i = 0; i < 16; ++i) {
      const __mmask16 eq =
          _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(xb + 16 * i)), vmax, _CMP_EQ_OQ);
      if (eq) {
        first = 16 * i + __builtin_ctz(unsigned(eq));
        break;
      }
    }
    const float iscale = -127.f / xb[first];
    const __m512 mul = _mm512_set1_ps(iscale);
    const __m512i top = _mm512_set1_epi32(127);
    for (int g = 0; g < 16; ++g) {
      const __m512i q = _mm512_min_epi32(
          _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xb + 16 * g), mul)), top);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(blk.qs + 16 * g), _mm512_cvtsepi32_epi8(q));
      blk.bsums[g] = int16_t(_mm512_reduce_add_epi32(q));
    }
    blk.d = 1 / iscale;
    put_q8k(o, b, blk);
  }
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#endif  // KILN_MK_X86

}  // namespace

QuantizeActFn act_quantizer(DType act_type, Isa isa, bool ggml_x86) {
#if defined(KILN_MK_X86)
  if (isa == Isa::kAvx512Vnni) {
    switch (act_type) {
      case DType::Q8_0:
        return ggml_x86 ? quant_legacy_avx512<false, true> : quant_legacy_avx512<false, false>;
      case DType::Q8_1:
        return ggml_x86 ? quant_legacy_avx512<true, true> : quant_legacy_avx512<true, false>;
      default:
        return quant_q8k_avx512;
    }
  }
  if (isa == Isa::kAvx2 || isa == Isa::kAvx2Vnni) {
    switch (act_type) {
      case DType::Q8_0:
        return ggml_x86 ? quant_legacy_avx2<false, true> : quant_legacy_avx2<false, false>;
      case DType::Q8_1:
        return ggml_x86 ? quant_legacy_avx2<true, true> : quant_legacy_avx2<true, false>;
      default:
        return quant_q8k_avx2;
    }
  }
#endif
  (void)isa;
  switch (act_type) {
    case DType::Q8_0:
      return ggml_x86 ? quant_legacy_x86_scalar<false> : quant_legacy_ref<false>;
    case DType::Q8_1:
      return ggml_x86 ? quant_legacy_x86_scalar<true> : quant_legacy_ref<true>;
    default:
      return quant_q8k_ref;
  }
}

Status act_to_blocks_impl(DType act_type, const void* xq, void* blocks, int K) {
  const ActLayout l = act_layout(act_type, K);
  const auto* p = static_cast<const uint8_t*>(xq);
  const uint8_t* aux = p + l.aux_off;
  auto* out = static_cast<uint8_t*>(blocks);
  auto get_f = [&](int b, int field) {
    float v;
    std::memcpy(&v, aux + size_t(b) * l.aux_bytes + 4 * field, 4);
    return v;
  };
  for (int b = 0; b < l.nblocks; ++b) {
    if (act_type == DType::Q8_0) {
      BlockQ8_0 blk;
      blk.d = f32_to_f16(get_f(b, 0));
      std::memcpy(blk.qs, p + 32 * b, 32);
      std::memcpy(out + sizeof(blk) * b, &blk, sizeof(blk));
    } else if (act_type == DType::Q8_1) {
      BlockQ8_1 blk;
      blk.d = f32_to_f16(get_f(b, 0));
      blk.s = f32_to_f16(get_f(b, 1) * 8.0f);
      std::memcpy(blk.qs, p + 32 * b, 32);
      std::memcpy(out + sizeof(blk) * b, &blk, sizeof(blk));
    } else {
      BlockQ8_K blk;
      std::memcpy(blk.qs, p + 256 * b, 256);
      std::memcpy(blk.bsums, aux + size_t(b) * l.aux_bytes, 32);
      blk.d = get_f(b, 8);
      std::memcpy(out + sizeof(blk) * b, &blk, sizeof(blk));
    }
  }
  return Status::Ok();
}

}  // namespace kiln::mk::detail
