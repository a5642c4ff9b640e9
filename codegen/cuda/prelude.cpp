// The device helpers every generated module starts with. Two flavors of the first part: NVRTC
// (PTX inline assembly and CUDA builtins, no headers, so NVRTC needs nothing but itself) and the
// host emulation (plain C++ calling back into runtime/cuda_emulator.cpp for thread indices,
// barriers and warp shuffles). The rest — reductions, activation quantization, the dequantizers
// and the per-type dot products of the packed weight layouts (weight_layout.h) — is shared text,
// so the emulator runs exactly the arithmetic the GPU runs.
#include "codegen/cuda/emit.h"

namespace kiln::cuda::detail {
namespace {

const char* kNvrtc = R"KL(// ---- kiln CUDA prelude (NVRTC) ----
typedef unsigned char u8;
typedef signed char i8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef long long i64;
struct KilnArgs { void* p[24]; };
#define KL_DEV static __device__ __forceinline__
#define KL_SYNC() __syncthreads()
KL_DEV float kl_h2f(u16 h) { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f; }
KL_DEV u16 kl_f2h(float f) { u16 h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h; }
KL_DEV float kl_bits_f(u32 b) { return __uint_as_float(b); }
KL_DEV u32 kl_f_bits(float f) { return __float_as_uint(f); }
KL_DEV int kl_dp4a(int a, int b, int c) { return __dp4a(a, b, c); }
KL_DEV float kl_shfl_xor(float v, int m) { return __shfl_xor_sync(0xffffffffu, v, m); }
KL_DEV int kl_shfl_xor_i(int v, int m) { return __shfl_xor_sync(0xffffffffu, v, m); }
KL_DEV float kl_shfl_idx(float v, int src) { return __shfl_sync(0xffffffffu, v, src); }
KL_DEV double kl_shfl_xor_d(double v, int m) { return __shfl_xor_sync(0xffffffffu, v, m); }
KL_DEV int kl_shfl_idx_i(int v, int src) { return __shfl_sync(0xffffffffu, v, src); }
KL_DEV int kl_rint(float x) { return __float2int_rn(x); }
KL_DEV float kl_ldcg(const float* p) { return __ldcg(p); }
KL_DEV uint4 kl_ld16(const void* p) { return *(const uint4*)p; }
KL_DEV uint2 kl_ld8(const void* p) { return *(const uint2*)p; }
KL_DEV u32 kl_ld4(const void* p) { return *(const u32*)p; }
KL_DEV u16 kl_ld2(const void* p) { return *(const u16*)p; }
KL_DEV void kl_fence() { __threadfence(); }
KL_DEV u32 kl_atomic_inc(u32* p) { return atomicAdd(p, 1u); }
KL_DEV void kl_atomic_store0(u32* p) { atomicExch(p, 0u); }
KL_DEV void kl_atomic_max64(u64* p, u64 v) { atomicMax(p, v); }
// Programmatic dependent launch (sm_90): start the next kernel early, and wait for the previous
// one before touching anything it may write. No-ops elsewhere and without the launch attribute.
KL_DEV void kl_pdl_launch() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
KL_DEV void kl_pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
KL_DEV void kl_prefetch_l2(const void* p) { asm volatile("prefetch.global.L2 [%0];" :: "l"(p)); }
)KL";

const char* kEmulation =
    R"KL(// ---- kiln CUDA prelude (host emulation: runtime/cuda_emulator.cpp) ----
#include <math.h>
#include <string.h>
typedef unsigned char u8;
typedef signed char i8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef long long i64;
struct KilnArgs { void* p[24]; };
struct uint4 { u32 x, y, z, w; };
struct uint2 { u32 x, y; };
struct KlDim3 { u32 x, y, z; };
struct KlEmuHost {
  const KlDim3* (*thread_idx)();
  const KlDim3* (*block_idx)();
  const KlDim3* (*block_dim)();
  const KlDim3* (*grid_dim)();
  void (*sync)();
  u32 (*shfl_xor)(u32 v, int mask);
  u32 (*shfl_idx)(u32 v, int src);
};
static const KlEmuHost* kl_emu;
extern "C" void kl_emu_init(const KlEmuHost* h) { kl_emu = h; }
#define threadIdx (*kl_emu->thread_idx())
#define blockIdx (*kl_emu->block_idx())
#define blockDim (*kl_emu->block_dim())
#define gridDim (*kl_emu->grid_dim())
#define __global__
#define __device__
#define __shared__ static
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define KL_DEV static inline
#define KL_SYNC() kl_emu->sync()
KL_DEV int min(int a, int b) { return a < b ? a : b; }
KL_DEV int max(int a, int b) { return a > b ? a : b; }
KL_DEV float kl_bits_f(u32 b) { float f; memcpy(&f, &b, 4); return f; }
KL_DEV u32 kl_f_bits(float f) { u32 b; memcpy(&b, &f, 4); return b; }
KL_DEV float kl_h2f(u16 h) {
  u32 sign = (u32)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  if (exp == 0) {
    if (mant == 0) return kl_bits_f(sign);
    float f = (float)mant * (1.0f / 16777216.0f);
    return sign ? -f : f;
  }
  if (exp == 31) return kl_bits_f(sign | 0x7f800000u | (mant << 13));
  return kl_bits_f(sign | ((exp + 112) << 23) | (mant << 13));
}
KL_DEV u16 kl_f2h(float f) {
  u32 x = kl_f_bits(f), sign = (x >> 16) & 0x8000, absx = x & 0x7fffffffu;
  if (absx >= 0x7f800000u)
    return (u16)(sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 | ((absx >> 13) & 0x3ff) : 0));
  if (absx >= 0x477ff000u) return (u16)(sign | 0x7c00);
  if (absx < 0x38800000u) {
    float a = kl_bits_f(absx) * 16777216.0f;
    u32 m = (u32)a;
    float rem = a - (float)m;
    if (rem > 0.5f || (rem == 0.5f && (m & 1))) ++m;
    return (u16)(sign | m);
  }
  u32 mant = absx & 0x7fffff, exp = (absx >> 23) - 112, h = (exp << 10) | (mant >> 13);
  u32 rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) ++h;
  return (u16)(sign | h);
}
KL_DEV int kl_dp4a(int a, int b, int c) {
  for (int i = 0; i < 4; ++i) c += (int)(i8)(a >> (8 * i)) * (int)(i8)(b >> (8 * i));
  return c;
}
KL_DEV float kl_shfl_xor(float v, int m) { return kl_bits_f(kl_emu->shfl_xor(kl_f_bits(v), m)); }
KL_DEV int kl_shfl_xor_i(int v, int m) { return (int)kl_emu->shfl_xor((u32)v, m); }
KL_DEV float kl_shfl_idx(float v, int src) { return kl_bits_f(kl_emu->shfl_idx(kl_f_bits(v), src)); }
KL_DEV int kl_shfl_idx_i(int v, int src) { return (int)kl_emu->shfl_idx((u32)v, src); }
KL_DEV double kl_shfl_xor_d(double v, int m) {
  u64 b; memcpy(&b, &v, 8);
  const u64 lo = kl_emu->shfl_xor((u32)b, m), hi = kl_emu->shfl_xor((u32)(b >> 32), m);
  b = hi << 32 | lo;
  memcpy(&v, &b, 8);
  return v;
}
KL_DEV int kl_rint(float x) { return (int)nearbyintf(x); }
KL_DEV float kl_ldcg(const float* p) { return *p; }
KL_DEV uint4 kl_ld16(const void* p) { uint4 v; memcpy(&v, p, 16); return v; }
KL_DEV uint2 kl_ld8(const void* p) { uint2 v; memcpy(&v, p, 8); return v; }
KL_DEV u32 kl_ld4(const void* p) { u32 v; memcpy(&v, p, 4); return v; }
KL_DEV u16 kl_ld2(const void* p) { u16 v; memcpy(&v, p, 2); return v; }
KL_DEV void kl_fence() {}
KL_DEV u32 kl_atomic_inc(u32* p) { return (*p)++; }
KL_DEV void kl_atomic_store0(u32* p) { *p = 0; }
KL_DEV void kl_atomic_max64(u64* p, u64 v) { if (v > *p) *p = v; }
KL_DEV void kl_pdl_launch() {}
KL_DEV void kl_pdl_wait() {}
KL_DEV void kl_prefetch_l2(const void*) {}
)KL";

// Shared by both flavors.
const char* kCommon = R"KL(
// ---- common helpers ----
KL_DEV float kl_inf() { return kl_bits_f(0x7f800000u); }
KL_DEV float kl_round_f16(float x) { return kl_h2f(kl_f2h(x)); }
KL_DEV float kl_bf2f(u16 h) { return kl_bits_f((u32)h << 16); }
KL_DEV u16 kl_f2bf(float f) {
  u32 x = kl_f_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (u16)((x >> 16) | 64);
  return (u16)((x + (0x7fffu + ((x >> 16) & 1u))) >> 16);
}
KL_DEV float kl_round_bf16(float x) { return kl_bf2f(kl_f2bf(x)); }
KL_DEV float kl_warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += kl_shfl_xor(v, o);
  return v;
}
KL_DEV float kl_warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, kl_shfl_xor(v, o));
  return v;
}
KL_DEV int kl_warp_sum_i(int v) {
  for (int o = 16; o > 0; o >>= 1) v += kl_shfl_xor_i(v, o);
  return v;
}
// The first maximum over the warp (NaN never wins: lanes start from -inf and skip it).
KL_DEV void kl_warp_argmax(float* v, int* i) {
  for (int o = 16; o > 0; o >>= 1) {
    float v2 = kl_shfl_xor(*v, o);
    int i2 = kl_shfl_xor_i(*i, o);
    if (v2 > *v || (v2 == *v && i2 < *i)) { *v = v2; *i = i2; }
  }
}
// ---- ggml-cpu's float arithmetic, operation for operation (runtime/interp_ggml_math.h) ----
// The reference interpreter rounds exactly as llama.cpp's CPU code does; these replicas make the
// kernels round the same way. NVRTC compiles with --fmad=false, so only the fmaf calls written
// here are fused, on the GPU and in the host emulation alike.
// ggml_v_expf (AVX-512): a degree-5 polynomial on the reduced argument, scaled by 2^n.
KL_DEV float kl_ggml_expf(float x) {
  const float r = 0x1.8p23f;
  const float z = fmaf(x, 0x1.715476p+0f, r);
  const float n = z - r;
  const float b = fmaf(-n, 0x1.7f7d1cp-20f, fmaf(-n, 0x1.62e4p-1f, x));
  if (fabsf(n) > 192.0f) return n <= 0.0f ? 0.0f : kl_inf();
  const float u = b * b;
  const float j = fmaf(fmaf(fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u,
                            fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)),
                       u, fmaf(0x1.ffffecp-1f, b, 1.0f));
  return ldexpf(j, (int)n);
}
// ggml_v_silu.
KL_DEV float kl_silu(float x) { return x / (1.0f + kl_ggml_expf(0.0f - x)); }
// hsum_float_8 over the 8 lanes of an aligned group of 8 (lane & 7 = ggml's lane): every lane
// gets ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)). Float addition commutes, so the
// butterfly rounds exactly as ggml's pairwise reduction.
KL_DEV float kl_hsum8(float v) {
  v += kl_shfl_xor(v, 4);
  v += kl_shfl_xor(v, 2);
  return v + kl_shfl_xor(v, 1);
}
// _mm512_reduce_add_ps as GCC expands it, over an aligned group of 16 lanes: halves, quarters,
// then pairs — the same butterfly with one more step.
KL_DEV float kl_reduce16(float v) {
  v += kl_shfl_xor(v, 8);
  return kl_hsum8(v);
}
KL_DEV double kl_warp_sum_d(double v) {
  for (int o = 16; o > 0; o >>= 1) v += kl_shfl_xor_d(v, o);
  return v;
}
KL_DEV float kl_gelu_tanh(float x) {
  return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
}
KL_DEV float kl_gelu_erf(float x) { return 0.5f * x * (1.0f + erff(x * 0.7071067811865476f)); }
// ggml-cpu's GELU of x rounded to f16, from the host-made table of every f16 input
// (cuda::HostTable::kGeluF16); exact outside [-10, 10] as ggml's.
KL_DEV float kl_gelu_f16_table(float x, const float* tab) {
  if (x <= -10.0f) return 0.0f;
  if (x >= 10.0f) return x;
  return tab[kl_f2h(x)];
}
// Orderable key of a float for a 64-bit atomicMax: larger values win, then smaller indices.
KL_DEV u64 kl_argmax_key(float v, int i) {
  u32 b = kl_f_bits(v);
  b = (b & 0x80000000u) ? ~b : (b | 0x80000000u);
  return ((u64)b << 32) | (u64)(0xffffffffu - (u32)i);
}
// A uniform in (0, 1) from a counter-based hash of (seed, step, i).
KL_DEV float kl_uniform(u32 seed_lo, u32 seed_hi, u32 step, u32 i) {
  u64 z = ((u64)seed_hi << 32 | seed_lo) + 0x9E3779B97F4A7C15ull * ((u64)step + 1) +
          0xD1B54A32D192ED03ull * ((u64)i + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return ((float)(u32)(z >> 40) + 0.5f) * (1.0f / 16777216.0f);
}

// ---- weights in the packed layout (codegen/cuda/weight_layout.h) ----
// Element k of a packed row of K elements.
KL_DEV float kl_deq_q8_0(const u8* r, int K, int k) {
  return kl_h2f(kl_ld2(r + K + 2 * (k >> 5))) * (float)(i8)r[k];
}
KL_DEV int kl_nib(const u8* qs, int k) {
  const int b = k >> 5, j = k & 31;
  const u8 q = qs[16 * b + (j & 15)];
  return j < 16 ? (q & 15) : (q >> 4);
}
KL_DEV float kl_deq_q4_0(const u8* r, int K, int k) {
  return kl_h2f(kl_ld2(r + K / 2 + 2 * (k >> 5))) * (float)(kl_nib(r, k) - 8);
}
KL_DEV float kl_deq_q4_1(const u8* r, int K, int k) {
  const int nb = K >> 5;
  return kl_h2f(kl_ld2(r + K / 2 + 2 * (k >> 5))) * (float)kl_nib(r, k) +
         kl_h2f(kl_ld2(r + K / 2 + 2 * nb + 2 * (k >> 5)));
}
KL_DEV int kl_q5(const u8* r, int K, int k) {
  const u32 qh = kl_ld4(r + K / 2 + 4 * (k >> 5));
  return kl_nib(r, k) | (int)(((qh >> (k & 31)) & 1u) << 4);
}
KL_DEV float kl_deq_q5_0(const u8* r, int K, int k) {
  const int nb = K >> 5;
  return kl_h2f(kl_ld2(r + K / 2 + 4 * nb + 2 * (k >> 5))) * (float)(kl_q5(r, K, k) - 16);
}
KL_DEV float kl_deq_q5_1(const u8* r, int K, int k) {
  const int nb = K >> 5;
  return kl_h2f(kl_ld2(r + K / 2 + 4 * nb + 2 * (k >> 5))) * (float)kl_q5(r, K, k) +
         kl_h2f(kl_ld2(r + K / 2 + 6 * nb + 2 * (k >> 5)));
}
// Q4_K/Q5_K 6-bit scale and min of sub-block s from the 12 packed bytes.
KL_DEV void kl_k4_scale_min(const u8* b, int s, int* sc, int* m) {
  if (s < 4) {
    *sc = b[s] & 63;
    *m = b[s + 4] & 63;
  } else {
    *sc = (b[s + 4] & 0xF) | ((b[s - 4] >> 6) << 4);
    *m = (b[s + 4] >> 4) | ((b[s] >> 6) << 4);
  }
}
KL_DEV float kl_deq_q4_k(const u8* r, int K, int k) {
  const u8* b = r + 144 * (k >> 8);
  const int e = k & 255, s = e >> 5, l = e & 31;
  int sc, m;
  kl_k4_scale_min(b + 4, s, &sc, &m);
  const int q = (b[16 + 32 * (s >> 1) + l] >> (4 * (s & 1))) & 15;
  return kl_h2f(kl_ld2(b)) * (float)sc * (float)q - kl_h2f(kl_ld2(b + 2)) * (float)m;
}
KL_DEV float kl_deq_q6_k(const u8* r, int K, int k) {
  const int sb = k >> 8, e = k & 255, h = e >> 7, g = (e >> 5) & 3, l = e & 31;
  const u8 ql = r[128 * sb + 64 * h + l + 32 * (g & 1)];
  const int lo = g < 2 ? (ql & 15) : (ql >> 4);
  const int hi = (r[K / 2 + 64 * sb + 32 * h + l] >> (2 * g)) & 3;
  const int sc = (i8)r[3 * K / 4 + 16 * sb + 8 * h + 2 * g + (l >> 4)];
  const float d = kl_h2f(kl_ld2(r + 3 * K / 4 + K / 16 + 2 * sb));
  return d * (float)sc * (float)((lo | (hi << 4)) - 32);
}
KL_DEV float kl_deq_f32(const u8* r, int K, int k) { return ((const float*)r)[k]; }
KL_DEV float kl_deq_f16(const u8* r, int K, int k) { return kl_h2f(((const u16*)r)[k]); }
KL_DEV float kl_deq_bf16(const u8* r, int K, int k) { return kl_bf2f(((const u16*)r)[k]); }

// ---- integer dot products of one packed weight unit with 8-bit activations ----
// Activations of one row in shared memory: xq (int8, K), xd (scale per block: f16-rounded for
// q8_0/q8_1, f32 for q8_k), xs (q8_1: f16(d * sum q)), xsum (sum of q per 32).
// Q8_0: a unit is 16 quants (half a block): one 16-byte load.
struct KlU8 { uint4 q; float d; };
KL_DEV KlU8 kl_load_q8_0(const u8* r, int K, int u) {
  KlU8 w; w.q = kl_ld16(r + 16 * u); w.d = kl_h2f(kl_ld2(r + K + 2 * (u >> 1))); return w;
}
KL_DEV float kl_udot_q8_0(const KlU8& w, const i8* xq, const float* xd, const float* xs,
                          const int* xsum, int u) {
  const int* a = (const int*)(xq + 16 * u);
  int s = kl_dp4a((int)w.q.x, a[0], 0);
  s = kl_dp4a((int)w.q.y, a[1], s);
  s = kl_dp4a((int)w.q.z, a[2], s);
  s = kl_dp4a((int)w.q.w, a[3], s);
  return w.d * xd[u >> 1] * (float)s;
}
// Sum of the 32 products of a Q4/Q5 block's quants (0..15 or 0..31, in GGUF nibble order) with
// the activations of that block. qh: the 5th bits (0 for 4-bit types).
KL_DEV u32 kl_spread4(u32 x) {
  return ((x & 1u) << 4) | ((x & 2u) << 11) | ((x & 4u) << 18) | ((x & 8u) << 25);
}
KL_DEV int kl_nib_dot(uint4 q, u32 qh, const int* a) {
  const u32 w[4] = {q.x, q.y, q.z, q.w};
  int s = 0;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    s = kl_dp4a((int)((w[i] & 0x0F0F0F0Fu) | kl_spread4(qh >> (4 * i))), a[i], s);
    s = kl_dp4a((int)(((w[i] >> 4) & 0x0F0F0F0Fu) | kl_spread4(qh >> (16 + 4 * i))), a[4 + i], s);
  }
  return s;
}
// ggml's x86 legacy block products (ggml_vec_dot_*_q8_{0,1}) keep eight f32 lanes per output:
// lane l (0..7) holds elements 4l..4l+3 of every block. The weight quants of lane l of block b as
// one dp4a word (4-bit types: the low nibbles for l < 4, the high ones for l >= 4; 5-bit types
// add the fifth bits from qh).
KL_DEV int kl_lane_q8_0(const u8* r, int K, int b, int l) { return (int)kl_ld4(r + 32 * b + 4 * l); }
KL_DEV int kl_lane_q4(const u8* r, int K, int b, int l) {
  const u32 w = kl_ld4(r + 16 * b + 4 * (l & 3));
  return (int)((l < 4 ? w : w >> 4) & 0x0F0F0F0Fu);
}
KL_DEV int kl_lane_q5(const u8* r, int K, int b, int l) {
  return kl_lane_q4(r, K, b, l) | (int)kl_spread4(kl_ld4(r + K / 2 + 4 * b) >> (4 * l));
}
// Q4_0/Q4_1/Q5_0/Q5_1: a unit is one block of 32 (one 16-byte load of quants).
struct KlU4 { uint4 q; u32 qh; float d, m; };
KL_DEV KlU4 kl_load_q4_0(const u8* r, int K, int u) {
  KlU4 w; w.q = kl_ld16(r + 16 * u); w.qh = 0; w.d = kl_h2f(kl_ld2(r + K / 2 + 2 * u)); w.m = 0;
  return w;
}
KL_DEV KlU4 kl_load_q4_1(const u8* r, int K, int u) {
  KlU4 w = kl_load_q4_0(r, K, u);
  w.m = kl_h2f(kl_ld2(r + K / 2 + 2 * (K >> 5) + 2 * u));
  return w;
}
KL_DEV KlU4 kl_load_q5_0(const u8* r, int K, int u) {
  KlU4 w; w.q = kl_ld16(r + 16 * u); w.qh = kl_ld4(r + K / 2 + 4 * u);
  w.d = kl_h2f(kl_ld2(r + K / 2 + 4 * (K >> 5) + 2 * u)); w.m = 0;
  return w;
}
KL_DEV KlU4 kl_load_q5_1(const u8* r, int K, int u) {
  KlU4 w = kl_load_q5_0(r, K, u);
  w.m = kl_h2f(kl_ld2(r + K / 2 + 6 * (K >> 5) + 2 * u));
  return w;
}
// Offset 8 (Q4_0) or 16 (Q5_0): x = d (q - offset).
KL_DEV float kl_udot_q4_0(const KlU4& w, const i8* xq, const float* xd, const float* xs,
                          const int* xsum, int u) {
  const int s = kl_nib_dot(w.q, 0u, (const int*)(xq + 32 * u));
  return w.d * xd[u] * (float)(s - 8 * xsum[u]);
}
KL_DEV float kl_udot_q5_0(const KlU4& w, const i8* xq, const float* xd, const float* xs,
                          const int* xsum, int u) {
  const int s = kl_nib_dot(w.q, w.qh, (const int*)(xq + 32 * u));
  return w.d * xd[u] * (float)(s - 16 * xsum[u]);
}
// x = d q + m. With q8_1 activations the min term uses the block's stored sum (xs), as ggml does;
// with q8_0 ones, d_x * sum(q).
KL_DEV float kl_udot_q4_1(const KlU4& w, const i8* xq, const float* xd, const float* xs,
                          const int* xsum, int u) {
  const int s = kl_nib_dot(w.q, w.qh, (const int*)(xq + 32 * u));
  return w.d * xd[u] * (float)s + w.m * (xs ? xs[u] : xd[u] * (float)xsum[u]);
}
#define kl_udot_q5_1 kl_udot_q4_1
// Q4_K: a unit is 64 elements (two sub-blocks) of a 144-byte super-block.
struct KlUK4 { uint4 q0, q1; u32 dm; u32 sc[3]; };
KL_DEV KlUK4 kl_load_q4_k(const u8* r, int K, int u) {
  const u8* b = r + 144 * (u >> 2) ;
  KlUK4 w;
  w.q0 = kl_ld16(b + 16 + 32 * (u & 3));
  w.q1 = kl_ld16(b + 32 + 32 * (u & 3));
  w.dm = kl_ld4(b);
  w.sc[0] = kl_ld4(b + 4); w.sc[1] = kl_ld4(b + 8); w.sc[2] = kl_ld4(b + 12);
  return w;
}
// The integer parts of a Q4_K unit (sub-blocks 2c and 2c + 1 of super-block sb): the scaled
// products of quants and activations, and the mins times the activations' sums. ggml's
// repacked Q4_K kernels add these exactly in integers and round them once per fold.
KL_DEV void kl_uparts_q4_k(const KlUK4& w, const i8* xq, const int* xsum, int u, int* dot,
                           int* mins) {
  const int c = u & 3, sb = u >> 2;
  const int* a = (const int*)(xq + 256 * sb + 64 * c);
  const u32 q[8] = {w.q0.x, w.q0.y, w.q0.z, w.q0.w, w.q1.x, w.q1.y, w.q1.z, w.q1.w};
  int lo = 0, hi = 0;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    lo = kl_dp4a((int)(q[i] & 0x0F0F0F0Fu), a[i], lo);
    hi = kl_dp4a((int)((q[i] >> 4) & 0x0F0F0F0Fu), a[8 + i], hi);
  }
  u8 scb[12];
#pragma unroll
  for (int i = 0; i < 12; ++i) scb[i] = (u8)(w.sc[i >> 2] >> (8 * (i & 3)));
  int sc0, m0, sc1, m1;
  kl_k4_scale_min(scb, 2 * c, &sc0, &m0);
  kl_k4_scale_min(scb, 2 * c + 1, &sc1, &m1);
  const int* s = xsum + 8 * sb + 2 * c;
  *dot = sc0 * lo + sc1 * hi;
  *mins = m0 * s[0] + m1 * s[1];
}
// Q6_K: a unit is 8 consecutive l of one half of a super-block: 4 runs of 8 elements.
struct KlUK6 { uint2 qa, qb, qh; int sc[4]; float d; };
KL_DEV KlUK6 kl_load_q6_k(const u8* r, int K, int u) {
  const int sb = u >> 3, h = (u >> 2) & 1, l0 = 8 * (u & 3);
  KlUK6 w;
  w.qa = kl_ld8(r + 128 * sb + 64 * h + l0);
  w.qb = kl_ld8(r + 128 * sb + 64 * h + 32 + l0);
  w.qh = kl_ld8(r + K / 2 + 64 * sb + 32 * h + l0);
  const u8* sc = r + 3 * K / 4 + 16 * sb + 8 * h + (l0 >> 4);
#pragma unroll
  for (int g = 0; g < 4; ++g) w.sc[g] = (i8)sc[2 * g];
  w.d = kl_h2f(kl_ld2(r + 3 * K / 4 + K / 16 + 2 * sb));
  return w;
}
// The integer parts of a Q6_K unit: lane0 and lane1 get, for ggml's vector lanes 2(u & 3) and
// 2(u & 3) + 1 (elements 4L..4L+3 of every run of 32), the scaled products with the unsigned
// 6-bit quants; `whole` the unit's exact sum with the quants' offset of 32 taken out.
KL_DEV void kl_uparts_q6_k(const KlUK6& w, const i8* xq, int u, int* lane0, int* lane1,
                           int* whole) {
  const int sb = u >> 3, h = (u >> 2) & 1, l0 = 8 * (u & 3);
  const u32 qa[2] = {w.qa.x, w.qa.y}, qb[2] = {w.qb.x, w.qb.y}, qh[2] = {w.qh.x, w.qh.y};
  int l[2] = {0, 0}, all = 0;
#pragma unroll
  for (int g = 0; g < 4; ++g) {
    const int* a = (const int*)(xq + 256 * sb + 128 * h + 32 * g + l0);
#pragma unroll
    for (int k = 0; k < 2; ++k) {
      const u32 ql = (g & 1) ? qb[k] : qa[k];
      const u32 lo = (g < 2 ? ql : (ql >> 4)) & 0x0F0F0F0Fu;
      const u32 q = lo | (((qh[k] >> (2 * g)) & 0x03030303u) << 4);
      const int s = kl_dp4a((int)q, a[k], 0);
      l[k] += w.sc[g] * s;
      all += w.sc[g] * (s - 32 * kl_dp4a(0x01010101, a[k], 0));
    }
  }
  *lane0 = l[0];
  *lane1 = l[1];
  *whole = all;
}
// ---- attention: ggml order ----
// ggml_reduce16 (runtime/interp_ggml_math.h) of 16 values one thread holds: halves, quarters, then
// pairs.
KL_DEV float kl_reduce16_arr(const float* a) {
  float t3[8], t6[4];
#pragma unroll
  for (int i = 0; i < 8; ++i) t3[i] = a[i + 8] + a[i];
#pragma unroll
  for (int i = 0; i < 4; ++i) t6[i] = t3[i + 4] + t3[i];
  return (t6[0] + t6[2]) + (t6[1] + t6[3]);
}
// The end of ggml_vec_dot_f16 over its 4 x 16 accumulators (lane 16 j + l in a[16 j + l]):
// acc0 += acc2, acc1 += acc3, acc0 += acc1, then ggml_reduce16 (in f32; the caller adds any
// tail in f64).
KL_DEV float kl_vec_dot_f16_lanes(const float* a) {
  float s[16];
#pragma unroll
  for (int l = 0; l < 16; ++l) s[l] = (a[l] + a[32 + l]) + (a[16 + l] + a[48 + l]);
  return kl_reduce16_arr(s);
}
// A load that bypasses the caches, to wait on a flag another block raises.
KL_DEV u32 kl_ld_volatile(const u32* p) { return *(const volatile u32*)p; }
)KL";

}  // namespace

std::string prelude(bool emulation) {
  return std::string(emulation ? kEmulation : kNvrtc) + kCommon;
}

}  // namespace kiln::cuda::detail
