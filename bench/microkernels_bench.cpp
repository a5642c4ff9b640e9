// Quantized GEMV / GEMM microkernels (codegen/cpu/microkernels.h), one thread, at the shapes of
// the real models, next to the machine's read bandwidth:
//   BM_Read/<bytes>          streaming sum over a buffer in L2, in L3, and past L3 (GB/s)
//   BM_Gemv/<type>/<NxK>/<variant>/<footprint>
//        GB/s of weight bytes; footprint "hot" reuses one matrix (it stays in L2), "l3" cycles
//        through copies totalling 128 MiB (what decode sees here: a small model's weights stay
//        in the 480 MB L3), "dram" through 1 GiB.
//   BM_Gemm/<type>/<NxK>/<variant>   M = 128 activation rows (prefill), GFLOP/s = 2*M*N*K/s
//   ".../packed/..." the same on the packed layout (pack_weights)
//   BM_QuantizeAct/<type>/<K>/<variant>   one activation row
// docs/microkernels.md has the measured figures.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "codegen/cpu/microkernels.h"
#include "frontends/gguf/quant.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace kiln::mk {
namespace {

struct AlignedFree {
  void operator()(void* p) const { std::free(p); }
};
using Buffer = std::unique_ptr<uint8_t[], AlignedFree>;
Buffer alloc64(size_t bytes) {
  return Buffer(static_cast<uint8_t*>(std::aligned_alloc(64, (bytes + 63) / 64 * 64)));
}

// ---- read bandwidth

#if defined(__x86_64__)
__attribute__((target("avx512f"))) float sum_avx512(const float* p, size_t n) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
  for (size_t i = 0; i + 128 <= n; i += 128) {
    a0 = _mm512_add_ps(a0, _mm512_load_ps(p + i));
    a1 = _mm512_add_ps(a1, _mm512_load_ps(p + i + 16));
    a2 = _mm512_add_ps(a2, _mm512_load_ps(p + i + 32));
    a3 = _mm512_add_ps(a3, _mm512_load_ps(p + i + 48));
    a4 = _mm512_add_ps(a4, _mm512_load_ps(p + i + 64));
    a5 = _mm512_add_ps(a5, _mm512_load_ps(p + i + 80));
    a6 = _mm512_add_ps(a6, _mm512_load_ps(p + i + 96));
    a7 = _mm512_add_ps(a7, _mm512_load_ps(p + i + 112));
  }
  a0 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                     _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, a0);
  float s = 0;
  for (float v : lanes) s += v;
  return s;
}
#endif

float sum_plain(const float* p, size_t n) {
  float a[8] = {};
  for (size_t i = 0; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) a[j] += p[i + j];
  return a[0] + a[1] + a[2] + a[3] + a[4] + a[5] + a[6] + a[7];
}

void BM_Read(benchmark::State& state) {
  const size_t bytes = size_t(state.range(0));
  Buffer buf = alloc64(bytes);
  auto* f = reinterpret_cast<float*>(buf.get());
  for (size_t i = 0; i < bytes / 4; ++i) f[i] = float(i & 7);
  bool avx512 = false;
#if defined(__x86_64__)
  avx512 = __builtin_cpu_supports("avx512f");
#endif
  for (auto _ : state) {
#if defined(__x86_64__)
    float s = avx512 ? sum_avx512(f, bytes / 4) : sum_plain(f, bytes / 4);
#else
    float s = sum_plain(f, bytes / 4);
#endif
    benchmark::DoNotOptimize(s);
  }
  state.counters["GB/s"] =
      benchmark::Counter(double(bytes) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_Read)->Arg(1 << 20)->Arg(128 << 20)->Arg(1 << 30)->Unit(benchmark::kMicrosecond);

// ---- GEMV / GEMM

struct Shape {
  const char* model;
  DType type;
  int N, K;
};
// N x K as (output rows) x (inputs). SmolLM2-135M is Q4_1 with a Q8_0 head; Gemma 3 270M
// (q4_k_m) is mostly Q5_0 with Q4_K / Q6_K down projections and a Q8_0 head.
const Shape kShapes[] = {
    {"smollm2", DType::Q4_1, 576, 576},   {"smollm2", DType::Q4_1, 192, 576},
    {"smollm2", DType::Q4_1, 1536, 576},  {"smollm2", DType::Q4_1, 576, 1536},
    {"smollm2", DType::Q8_0, 49152, 576}, {"gemma3", DType::Q5_0, 1024, 640},
    {"gemma3", DType::Q5_0, 2048, 640},   {"gemma3", DType::Q5_0, 256, 640},
    {"gemma3", DType::Q4_K, 640, 1024},   {"gemma3", DType::Q4_K, 640, 2048},
    {"gemma3", DType::Q6_K, 640, 2048},   {"gemma3", DType::Q8_0, 256, 640},
    {"gemma3", DType::Q8_0, 262144, 640}, {"other", DType::Q4_0, 1536, 576},
    {"other", DType::Q4_0, 576, 1536},
};

// Random weights: one quantized matrix, copied `copies` times back to back.
struct Weights {
  size_t row_bytes = 0, matrix_bytes = 0;
  int copies = 1;
  Buffer data;
};

Weights make_weights(const Shape& s, size_t footprint, bool packed = false) {
  Weights w;
  w.row_bytes = row_bytes(s.type, s.K).value();
  w.matrix_bytes = packed ? packed_bytes(s.type, s.N, s.K) : w.row_bytes * s.N;
  w.copies = int(std::max<size_t>(1, footprint / w.matrix_bytes));
  w.data = alloc64(w.matrix_bytes * w.copies);
  std::mt19937 rng(1);
  std::normal_distribution<float> dist(0.0f, 0.02f);
  std::vector<float> row(s.K);
  for (int n = 0; n < s.N; ++n) {
    for (float& v : row) v = dist(rng);
    (void)quant::quantize_row(s.type, row.data(), w.data.get() + w.row_bytes * n, s.K);
  }
  if (packed) {
    std::vector<uint8_t> file(w.data.get(), w.data.get() + w.row_bytes * s.N);
    (void)pack_weights(s.type, file.data(), w.row_bytes, s.N, s.K, w.data.get());
  }
  for (int c = 1; c < w.copies; ++c)
    std::memcpy(w.data.get() + w.matrix_bytes * c, w.data.get(), w.matrix_bytes);
  return w;
}

Buffer make_acts(const Kernels& k, int M, int K, size_t* stride) {
  *stride = k.act_bytes(K);
  Buffer xq = alloc64(*stride * M);
  std::mt19937 rng(2);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(K);
  for (int m = 0; m < M; ++m) {
    for (float& v : x) v = dist(rng);
    k.quantize_act(x.data(), xq.get() + *stride * m, K);
  }
  return xq;
}

// One product, on the file layout or the packed one.
void run(const Kernels& k, bool packed, const Shape& s, const uint8_t* w, size_t row_bytes,
         const uint8_t* xq, size_t xs, int M, float* y) {
  if (packed)
    k.gemm_packed(w, s.N, 0, s.N, xq, xs, M, y, s.N, s.K, 0);
  else
    k.gemm(w, row_bytes, 0, s.N, xq, xs, M, y, s.N, s.K);
}

void BM_Gemv(benchmark::State& state, Shape s, Isa isa, size_t footprint, bool packed) {
  Result<const Kernels*> k = kernels(s.type, isa);
  if (!k.ok()) {
    state.SkipWithError(k.message().c_str());
    return;
  }
  Weights w = make_weights(s, footprint, packed);
  size_t xs = 0;
  Buffer xq = make_acts(**k, 1, s.K, &xs);
  std::vector<float> y(s.N);
  int c = 0;
  for (auto _ : state) {
    run(**k, packed, s, w.data.get() + w.matrix_bytes * c, w.row_bytes, xq.get(), xs, 1, y.data());
    benchmark::DoNotOptimize(y.data());
    if (++c == w.copies) c = 0;
  }
  state.counters["GB/s"] = benchmark::Counter(double(w.matrix_bytes) * 1e-9,
                                              benchmark::Counter::kIsIterationInvariantRate);
}

void BM_Gemm(benchmark::State& state, Shape s, Isa isa, int M, bool packed) {
  Result<const Kernels*> k = kernels(s.type, isa);
  if (!k.ok()) {
    state.SkipWithError(k.message().c_str());
    return;
  }
  Weights w = make_weights(s, 0, packed);
  size_t xs = 0;
  Buffer xq = make_acts(**k, M, s.K, &xs);
  std::vector<float> y(size_t(M) * s.N);
  for (auto _ : state) {
    run(**k, packed, s, w.data.get(), w.row_bytes, xq.get(), xs, M, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(2e-9 * M * s.N * s.K, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_QuantizeAct(benchmark::State& state, DType t, int K, Isa isa) {
  Result<const Kernels*> k = kernels(t, isa);
  if (!k.ok()) {
    state.SkipWithError(k.message().c_str());
    return;
  }
  std::vector<float> x(K);
  std::mt19937 rng(3);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (float& v : x) v = dist(rng);
  Buffer xq = alloc64((*k)->act_bytes(K));
  for (auto _ : state) {
    (*k)->quantize_act(x.data(), xq.get(), K);
    benchmark::DoNotOptimize(xq.get());
  }
  state.counters["Gelem/s"] =
      benchmark::Counter(1e-9 * K, benchmark::Counter::kIsIterationInvariantRate);
}

std::string shape_name(const Shape& s) {
  return std::string(dtype_name(s.type)) + "/" + std::to_string(s.N) + "x" + std::to_string(s.K);
}

[[maybe_unused]] const int registered = [] {
  const Isa all[] = {Isa::kScalar, Isa::kAvx2, Isa::kAvx2Vnni, Isa::kAvx512Vnni};
  const Isa best = best_isa();
  for (const Shape& s : kShapes) {
    const size_t bytes = row_bytes(s.type, s.K).value() * s.N;
    for (bool packed : {false, true}) {
      if (packed && !packable(s.type)) continue;
      const std::string layout = packed ? "/packed" : "";
      for (Isa isa : all) {
        if (!isa_available(isa)) continue;
        const std::string base = shape_name(s) + "/" + isa_name(isa) + layout;
        auto gemv = [&](const char* where, size_t footprint) {
          benchmark::RegisterBenchmark(("BM_Gemv/" + base + "/" + where).c_str(), BM_Gemv, s, isa,
                                       footprint, packed)
              ->Unit(benchmark::kMicrosecond);
        };
        gemv("hot", 0);
        if (isa == best || isa == Isa::kAvx2Vnni) gemv("l3", size_t(128) << 20);
        if (isa == best && bytes < (size_t(16) << 20)) gemv("dram", size_t(1) << 30);
        if (isa != Isa::kScalar && bytes < (size_t(64) << 20)) {
          benchmark::RegisterBenchmark(("BM_Gemm/" + base + "/m128").c_str(), BM_Gemm, s, isa, 128,
                                       packed)
              ->Unit(benchmark::kMillisecond);
        }
      }
    }
  }
  for (DType t : {DType::Q4_1, DType::Q5_0, DType::Q4_K}) {
    for (int K : {576, 640, 2048}) {
      if (K % int(dtype_info(t).block_elems) != 0) continue;
      for (Isa isa : all) {
        if (!isa_available(isa)) continue;
        benchmark::RegisterBenchmark(("BM_QuantizeAct/" + std::string(dtype_name(t)) + "/" +
                                      std::to_string(K) + "/" + isa_name(isa))
                                         .c_str(),
                                     BM_QuantizeAct, t, K, isa);
      }
    }
  }
  return 0;
}();

}  // namespace
}  // namespace kiln::mk
