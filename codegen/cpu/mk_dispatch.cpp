// Microkernel dispatch: which variants this CPU can run, the per-(type, ISA) function tables, the
// one-time JIT, and the tile driver shared by the JIT variants.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string_view>
#include <utility>

#include "codegen/cpu/microkernels.h"
#include "codegen/cpu/mk_internal.h"

#if defined(KILN_WITH_XBYAK)
#include <xbyak/xbyak_util.h>
#endif

namespace kiln::mk {
namespace detail {

namespace {
constexpr DType kTypes[kNumTypes] = {DType::Q4_0, DType::Q4_1, DType::Q5_0,
                                     DType::Q8_0, DType::Q4_K, DType::Q6_K};
}  // namespace

int type_index(DType weight_type) {
  for (int i = 0; i < kNumTypes; ++i)
    if (kTypes[i] == weight_type) return i;
  return -1;
}
DType type_at(int index) {
  return kTypes[index];
}

ActLayout act_layout(DType act_type, int K) {
  ActLayout l;
  l.act_type = act_type;
  l.block_elems = act_type == DType::Q8_K ? 256 : 32;
  l.nblocks = K / l.block_elems;
  l.aux_bytes = act_type == DType::Q8_K ? 64 : 16;
  l.aux_off = round_up64(size_t(K));
  l.bytes = l.aux_off + round_up64(size_t(l.nblocks) * l.aux_bytes);
  return l;
}

void run_tiles(const TileSet& ts, DType weight_type, const void* W, size_t w_row_bytes, int n0,
               int n1, const void* xq, size_t xq_row_bytes, int M, float* y, size_t y_row_stride,
               int K) {
  if (n1 <= n0 || M <= 0) return;
  const ActLayout al = act_layout(act_type(weight_type), K);
  const int nblocks = K / int(dtype_info(weight_type).block_elems);
  TileArgs a;
  a.w_stride = int64_t(w_row_bytes);
  a.x_stride = int64_t(xq_row_bytes);
  a.y_stride = int64_t(y_row_stride * sizeof(float));
  a.nsteps = nblocks / ts.blocks_per_step;
  a.tail = nblocks % ts.blocks_per_step;
  a.aux_off = int64_t(al.aux_off);
  const auto* w = static_cast<const uint8_t*>(W);
  const auto* x = static_cast<const uint8_t*>(xq);
  // With several activation rows, sweep them over a chunk of weight rows that stays in L2, so
  // the weights come from memory once; the activations (a few hundred KiB) stay in L2 too.
  int chunk = n1 - n0;
  if (M > 1) {
    const size_t rows = (size_t(256) << 10) / std::max<size_t>(w_row_bytes, 1);
    chunk = std::max(24, int(std::min<size_t>(rows, 1 << 20)) / 24 * 24);
  }
  for (int nc = n0; nc < n1; nc += chunk) {
    const int ne = std::min(n1, nc + chunk);
    for (int m = 0; m < M;) {
      const int mr = std::min(ts.mr_max, M - m);
      const int nr = ts.nr_max[mr];
      const int full = (ne - nc) / nr, rem = (ne - nc) % nr;
      a.x = x + size_t(m) * xq_row_bytes;
      if (full > 0) {
        a.w = w + size_t(nc) * w_row_bytes;
        a.y = y + size_t(m) * y_row_stride + nc;
        a.ntiles = full;
        ts.fn[mr][nr](&a);
      }
      if (rem > 0) {
        const int n = nc + full * nr;
        a.w = w + size_t(n) * w_row_bytes;
        a.y = y + size_t(m) * y_row_stride + n;
        a.ntiles = 1;
        ts.fn[mr][rem](&a);
      }
      m += mr;
    }
  }
}

namespace {

size_t act_bytes_q8_0(int K) {
  return act_layout(DType::Q8_0, K).bytes;
}
size_t act_bytes_q8_1(int K) {
  return act_layout(DType::Q8_1, K).bytes;
}
size_t act_bytes_q8_k(int K) {
  return act_layout(DType::Q8_K, K).bytes;
}
ActBytesFn act_bytes_fn(DType act) {
  return act == DType::Q8_0 ? act_bytes_q8_0 : act == DType::Q8_1 ? act_bytes_q8_1 : act_bytes_q8_k;
}

TileSet g_tiles[kNumIsas][kNumTypes];
PackedSet g_packed[kNumIsas][kNumTypes];
Kernels g_kernels[kNumIsas][kNumTypes];
std::once_flag g_once[kNumIsas];
Status g_status[kNumIsas];

template <int I, int T>
void gemm_entry(const void* W, size_t w_row_bytes, int n0, int n1, const void* xq,
                size_t xq_row_bytes, int M, float* y, size_t y_row_stride, int K) {
  run_tiles(g_tiles[I][T], kTypes[T], W, w_row_bytes, n0, n1, xq, xq_row_bytes, M, y, y_row_stride,
            K);
}

template <int I, int T>
void gemm_packed_entry(const void* Wp, int N, int n0, int n1, const void* xq, size_t xq_row_bytes,
                       int M, float* y, size_t y_row_stride, int K, int tokens) {
  run_packed(g_packed[I][T], &gemm_entry<I, T>, kTypes[T], Wp, N, n0, n1, xq, xq_row_bytes, M, y,
             y_row_stride, K, tokens);
}

template <int I, int... T>
constexpr void fill_entries(GemmFn* out, GemmPackedFn* packed, std::integer_sequence<int, T...>) {
  ((out[T] = &gemm_entry<I, T>), ...);
  ((packed[T] = &gemm_packed_entry<I, T>), ...);
}

struct JitEntries {
  GemmFn gemm[kNumIsas][kNumTypes] = {};
  GemmPackedFn packed[kNumIsas][kNumTypes] = {};
};

const JitEntries& jit_entries() {
  static const JitEntries e = [] {
    JitEntries e;
    auto seq = std::make_integer_sequence<int, kNumTypes>{};
    fill_entries<1>(e.gemm[1], e.packed[1], seq);
    fill_entries<2>(e.gemm[2], e.packed[2], seq);
    fill_entries<3>(e.gemm[3], e.packed[3], seq);
    return e;
  }();
  return e;
}

void fill_table(Isa isa) {
  for (int t = 0; t < kNumTypes; ++t) {
    Kernels& k = g_kernels[int(isa)][t];
    k.weight_type = kTypes[t];
    k.act_type = act_type(kTypes[t]);
    k.isa = isa;
    k.act_bytes = act_bytes_fn(k.act_type);
    k.quantize_act = act_quantizer(k.act_type, isa, false);
    k.quantize_act_ggml_x86 = act_quantizer(k.act_type, isa, true);
    const bool packs = packable(kTypes[t]);
    if (isa == Isa::kScalar) {
      k.gemm = scalar_gemm(kTypes[t]);
      k.gemm_packed = packs ? scalar_gemm_packed(kTypes[t]) : nullptr;
    } else {
      k.gemm = jit_entries().gemm[int(isa)][t];
      k.gemm_packed = packs ? jit_entries().packed[int(isa)][t] : nullptr;
    }
  }
}

// Compiles one variant's code. Runs once per ISA under g_once.
Status build_isa(Isa isa) {
  if (!isa_available(isa)) {
    return make_error("microkernels: variant ", isa_name(isa), " is unavailable on this ",
#if defined(KILN_WITH_XBYAK)
                      "CPU"
#else
                      "build (KILN_WITH_XBYAK=OFF)"
#endif
    );
  }
#if defined(KILN_WITH_XBYAK)
  if (isa != Isa::kScalar) {
    KILN_RETURN_IF_ERROR(jit_tiles(isa, g_tiles[int(isa)], g_packed[int(isa)]));
  }
#endif
  fill_table(isa);
  return Status::Ok();
}

const Status& ensure_isa(Isa isa) {
  std::call_once(g_once[int(isa)], [isa] { g_status[int(isa)] = build_isa(isa); });
  return g_status[int(isa)];
}

struct CpuIsas {
  bool avail[kNumIsas] = {true, false, false, false};
  CpuIsas() {
#if defined(KILN_WITH_XBYAK)
    using Xbyak::util::Cpu;
    Cpu cpu;
    const bool avx2 = cpu.has(Cpu::tAVX2) && cpu.has(Cpu::tFMA) && cpu.has(Cpu::tF16C);
    avail[int(Isa::kAvx2)] = avx2;
    avail[int(Isa::kAvx2Vnni)] = avx2 && cpu.has(Cpu::tAVX_VNNI);
    avail[int(Isa::kAvx512Vnni)] = avx2 && cpu.has(Cpu::tAVX512F) && cpu.has(Cpu::tAVX512BW) &&
                                   cpu.has(Cpu::tAVX512DQ) && cpu.has(Cpu::tAVX512VL) &&
                                   cpu.has(Cpu::tAVX512_VNNI);
#endif
  }
};
const CpuIsas& cpu_isas() {
  static const CpuIsas c;
  return c;
}

}  // namespace
}  // namespace detail

using namespace detail;

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kScalar:
      return "scalar";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kAvx2Vnni:
      return "avx2_vnni";
    case Isa::kAvx512Vnni:
      return "avx512_vnni";
  }
  return "?";
}

bool supported(DType weight_type) {
  return type_index(weight_type) >= 0;
}

DType act_type(DType weight_type) {
  switch (weight_type) {
    case DType::Q4_0:
    case DType::Q5_0:
    case DType::Q8_0:
      return DType::Q8_0;
    case DType::Q4_1:
      return DType::Q8_1;
    case DType::Q4_K:
    case DType::Q6_K:
      return DType::Q8_K;
    default:
      return DType::F32;
  }
}

bool isa_available(Isa isa) {
  const int i = int(isa);
  return i >= 0 && i < kNumIsas && cpu_isas().avail[i];
}

Isa best_isa() {
  static const Isa best = [] {
    if (const char* env = std::getenv("KILN_MK_ISA")) {
      for (int i = 0; i < kNumIsas; ++i)
        if (std::string_view(env) == isa_name(Isa(i)) && isa_available(Isa(i))) return Isa(i);
    }
    for (int i = kNumIsas - 1; i > 0; --i)
      if (isa_available(Isa(i))) return Isa(i);
    return Isa::kScalar;
  }();
  return best;
}

bool fast_order_requested() {
  static const bool fast = [] {
    const char* order = std::getenv("KILN_MK_ORDER");
    return order && std::string_view(order) == "fast";
  }();
  return fast;
}

bool ggml_order() {
  return best_isa() == Isa::kAvx512Vnni && !fast_order_requested();
}

bool pack_pays(DType t) {
  return packable(t) && (ggml_order() || (t != DType::Q4_K && t != DType::Q6_K));
}

Status init() {
  static const Status st = []() -> Status {
    KILN_RETURN_IF_ERROR(ensure_isa(Isa::kScalar));
    return ensure_isa(best_isa());
  }();
  return st;
}

Result<const Kernels*> kernels(DType weight_type, Isa isa) {
  const int t = type_index(weight_type);
  if (t < 0) {
    return make_error("microkernels: no kernels for weight type ", dtype_name(weight_type),
                      " (have q4_0, q4_1, q5_0, q8_0, q4_k, q6_k)");
  }
  if (int(isa) < 0 || int(isa) >= kNumIsas) return make_error("microkernels: bad ISA ", int(isa));
  KILN_RETURN_IF_ERROR(ensure_isa(isa));
  return &g_kernels[int(isa)][t];
}

const Kernels* kernels(DType weight_type) {
  const int t = type_index(weight_type);
  if (t < 0) return nullptr;
  const Isa best = best_isa();
  if (ensure_isa(best).ok()) return &g_kernels[int(best)][t];
  if (!ensure_isa(Isa::kScalar).ok()) return nullptr;
  return &g_kernels[int(Isa::kScalar)][t];
}

size_t act_bytes(DType weight_type, int K) {
  return supported(weight_type) ? act_layout(act_type(weight_type), K).bytes : 0;
}

namespace {
Status check_k(DType weight_type, int K) {
  if (!supported(weight_type)) {
    return make_error("microkernels: no kernels for weight type ", dtype_name(weight_type));
  }
  const int be = int(dtype_info(weight_type).block_elems);
  if (K <= 0 || K % be != 0) {
    return make_error("microkernels: K=", K, " is not a positive multiple of ", be, " for ",
                      dtype_name(weight_type));
  }
  return Status::Ok();
}
}  // namespace

Status quantize_act(DType weight_type, const float* x, void* xq, int K) {
  KILN_RETURN_IF_ERROR(check_k(weight_type, K));
  const Kernels* k = kernels(weight_type);
  if (!k) return make_error("microkernels: no kernels available");
  k->quantize_act(x, xq, K);
  return Status::Ok();
}

Status gemm(DType weight_type, const void* W, size_t w_row_bytes, int n0, int n1, const void* xq,
            size_t xq_row_bytes, int M, float* y, size_t y_row_stride, int K) {
  KILN_RETURN_IF_ERROR(check_k(weight_type, K));
  if (xq_row_bytes < act_bytes(weight_type, K) && M > 1) {
    return make_error("microkernels: activation row stride ", xq_row_bytes, " < act_bytes ",
                      act_bytes(weight_type, K));
  }
  const Kernels* k = kernels(weight_type);
  if (!k) return make_error("microkernels: no kernels available");
  k->gemm(W, w_row_bytes, n0, n1, xq, xq_row_bytes, M, y, y_row_stride, K);
  return Status::Ok();
}

Status gemm_packed(DType weight_type, const void* Wp, int N, int n0, int n1, const void* xq,
                   size_t xq_row_bytes, int M, float* y, size_t y_row_stride, int K, int tokens) {
  KILN_RETURN_IF_ERROR(check_k(weight_type, K));
  if (!packable(weight_type)) {
    return make_error("microkernels: no packed layout for ", dtype_name(weight_type));
  }
  if (n0 < 0 || n1 > N || n0 % kPackRows != 0 || (n1 % kPackRows != 0 && n1 != N)) {
    return make_error("microkernels: packed rows [", n0, ", ", n1, ") of ", N,
                      " must start on a multiple of ", kPackRows, " and end on one or at N");
  }
  const Kernels* k = kernels(weight_type);
  if (!k) return make_error("microkernels: no kernels available");
  k->gemm_packed(Wp, N, n0, n1, xq, xq_row_bytes, M, y, y_row_stride, K, tokens);
  return Status::Ok();
}

Status act_to_blocks(DType weight_type, const void* xq, void* blocks, int K) {
  KILN_RETURN_IF_ERROR(check_k(weight_type, K));
  return act_to_blocks_impl(act_type(weight_type), xq, blocks, K);
}

}  // namespace kiln::mk
