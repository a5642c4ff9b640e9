// Throughput of the scalar reference (de)quantizers (frontends/gguf/quant.h). The reference
// interpreter dequantizes whole weight matrices with these, so they should not be pathological;
// optimized kernels are measured elsewhere. bytes_per_second counts f32 output (dequantize) or
// f32 input (quantize).
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "frontends/gguf/quant.h"

namespace kiln::quant {
namespace {

constexpr size_t kElems = size_t(1) << 20;  // 4 MiB of f32: a mid-sized weight matrix

std::vector<float> random_weights(size_t n) {
  std::mt19937 rng(1);
  std::normal_distribution<float> dist(0.0f, 0.02f);
  std::vector<float> x(n);
  for (float& v : x) v = dist(rng);
  return x;
}

void BM_Dequantize(benchmark::State& state, DType t) {
  std::vector<float> x = random_weights(kElems);
  std::vector<uint8_t> q(row_bytes(t, kElems).value());
  if (!quantize_row(t, x.data(), q.data(), kElems).ok()) {
    state.SkipWithError("quantize failed");
    return;
  }
  std::vector<float> y(kElems);
  for (auto _ : state) {
    Status st = dequantize_row(t, q.data(), y.data(), kElems);
    benchmark::DoNotOptimize(st);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(kElems * sizeof(float)));
}

void BM_Quantize(benchmark::State& state, DType t) {
  std::vector<float> x = random_weights(kElems);
  std::vector<uint8_t> q(row_bytes(t, kElems).value());
  for (auto _ : state) {
    Status st = quantize_row(t, x.data(), q.data(), kElems);
    benchmark::DoNotOptimize(st);
    benchmark::DoNotOptimize(q.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(kElems * sizeof(float)));
}

BENCHMARK_CAPTURE(BM_Dequantize, q4_0, DType::Q4_0)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Dequantize, q4_1, DType::Q4_1)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Dequantize, q8_0, DType::Q8_0)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Dequantize, q4_k, DType::Q4_K)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Dequantize, q6_k, DType::Q6_K)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Dequantize, f16, DType::F16)->Unit(benchmark::kMillisecond);
// The activation formats, quantized on the fly by later CPU kernels.
BENCHMARK_CAPTURE(BM_Quantize, q8_0, DType::Q8_0)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Quantize, q8_k, DType::Q8_K)->Unit(benchmark::kMillisecond);
// A weight format with the full scale search, for scale.
BENCHMARK_CAPTURE(BM_Quantize, q4_k, DType::Q4_K)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace kiln::quant
