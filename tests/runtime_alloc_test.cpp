// The token loop allocates nothing: 64 decode steps (the compiled decode graph on a two-thread
// pool, then the sampler) on a tiny model, with every operator new and — outside the sanitizers,
// which own malloc — every malloc, calloc and realloc of the process counted by a hook.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "codegen/cpu/cpu_codegen.h"
#include "frontends/gguf/gguf_file.h"
#include "frontends/gguf/make_model.h"
#include "runtime/backend.h"
#include "runtime/context.h"
#include "runtime/sampler.h"

// The replacement operators below pair new with malloc and delete with free on purpose.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#if defined(__SANITIZE_ADDRESS__)
#define KILN_HOOK_MALLOC 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define KILN_HOOK_MALLOC 0
#endif
#endif
#ifndef KILN_HOOK_MALLOC
#define KILN_HOOK_MALLOC 1
#endif

namespace {
std::atomic<bool> g_counting{false};
std::atomic<long> g_allocations{0};
inline void note_allocation() {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1);
}
}  // namespace

#if KILN_HOOK_MALLOC
// glibc's own entry points, so the hook can forward to them.
extern "C" void* __libc_malloc(size_t);
extern "C" void* __libc_calloc(size_t, size_t);
extern "C" void* __libc_realloc(void*, size_t);
extern "C" void* malloc(size_t n) {
  note_allocation();
  return __libc_malloc(n);
}
extern "C" void* calloc(size_t n, size_t m) {
  note_allocation();
  return __libc_calloc(n, m);
}
extern "C" void* realloc(void* p, size_t n) {
  note_allocation();
  return __libc_realloc(p, n);
}
#endif

// Every allocating form of operator new comes through these two.
void* operator new(size_t n) {
  note_allocation();
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new(size_t n, std::align_val_t a) {
  note_allocation();
  const size_t al = size_t(a);
  if (void* p = std::aligned_alloc(al, (n + al - 1) / al * al)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t n) {
  return operator new(n);
}
void* operator new[](size_t n, std::align_val_t a) {
  return operator new(n, a);
}
void* operator new(size_t n, const std::nothrow_t&) noexcept {
  note_allocation();
  return std::malloc(n ? n : 1);
}
void* operator new[](size_t n, const std::nothrow_t&) noexcept {
  note_allocation();
  return std::malloc(n ? n : 1);
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, size_t) noexcept {
  std::free(p);
}
void operator delete[](void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p, size_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete(void* p, size_t, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, size_t, std::align_val_t) noexcept {
  std::free(p);
}

namespace kiln {
namespace {

TEST(AllocationHook, CountsAllocations) {
  // The hook itself must see an allocation, or a zero below would prove nothing.
  g_allocations = 0;
  g_counting = true;
  auto* v = new std::vector<int>(1000, 3);
  void* p = std::malloc(100);
  g_counting = false;
  std::free(p);
  delete v;
  EXPECT_GE(g_allocations.load(), KILN_HOOK_MALLOC ? 3 : 2);
}

struct Case {
  const char* preset;
  DType quant;
  DType kv;
};

class TokenLoop : public ::testing::TestWithParam<Case> {};

TEST_P(TokenLoop, SixtyFourDecodeStepsAllocateNothing) {
  if (!cpu::llvm_available()) GTEST_SKIP() << "built without LLVM";
  const Case& c = GetParam();
  const gguf::ModelPreset* preset = gguf::find_preset(c.preset);
  ASSERT_TRUE(preset);
  gguf::MakeModelOptions mo;
  mo.quant = c.quant;
  mo.seed = 5;
  mo.threads = 2;
  auto w = gguf::make_model(*preset, mo);
  ASSERT_TRUE(w.ok()) << w.message();
  std::vector<uint8_t> bytes;
  ASSERT_TRUE(w->to_bytes(&bytes).ok());
  auto file = gguf::GgufFile::parse(bytes, std::string(c.preset) + ".gguf");
  ASSERT_TRUE(file.ok()) << file.message();

  runtime::BackendOptions o;
  o.threads = 2;  // the pool and its barrier in the loop
  o.ctx = 128;
  o.kv_type = c.kv;
  auto backend = runtime::make_cpu_backend(**file, o);
  ASSERT_TRUE(backend.ok()) << backend.message();
  runtime::Context cx(**backend, {8}, 128);
  const std::vector<int32_t> prompt = {1, 33, 7, 91, 12, 5};
  auto logits = cx.eval(prompt);
  ASSERT_TRUE(logits.ok()) << logits.message();

  SamplingOptions so;  // the default chain: penalties, top-k, top-p, min-p, temperature
  so.seed = 9;
  so.repeat_penalty = 1.1f;
  so.top_logprobs = 3;
  runtime::Sampler sampler(so, int(logits->size()));
  // One step before counting builds the decode graph (compilation allocates, once).
  int32_t id = sampler.sample(*logits, cx.tokens());
  logits = cx.eval(std::span<const int32_t>(&id, 1));
  ASSERT_TRUE(logits.ok()) << logits.message();

  g_allocations = 0;
  g_counting = true;
  int steps = 0;
  for (; steps < 64; ++steps) {
    id = sampler.sample(*logits, cx.tokens());
    logits = cx.eval(std::span<const int32_t>(&id, 1));
    if (!logits.ok()) break;
  }
  g_counting = false;
  ASSERT_TRUE(logits.ok()) << logits.message();
  EXPECT_EQ(steps, 64);
  EXPECT_EQ(cx.n_past(), int(prompt.size()) + 65);
  EXPECT_EQ(g_allocations.load(), 0) << "heap allocations in 64 decode steps";
}

INSTANTIATE_TEST_SUITE_P(Tiny, TokenLoop,
                         ::testing::Values(Case{"tiny-llama", DType::Q4_0, DType::F16},
                                           Case{"tiny-gemma3", DType::Q4_K, DType::Q8_0}),
                         [](const auto& info) {
                           std::string s = std::string(info.param.preset) + "_kv_" +
                                           std::string(dtype_name(info.param.kv));
                           for (char& ch : s)
                             if (ch == '-') ch = '_';
                           return s;
                         });

}  // namespace
}  // namespace kiln
