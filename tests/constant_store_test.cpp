// ConstantStore's memory behaviour (docs/runtime.md, "Memory"): a weight is packed a piece at a
// time, each piece of its stored bytes reported once packed, the packed copy identical to a
// single pack_weights; a derived constant made only to be packed is freed after packing unless a
// kernel read it as stored.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <random>
#include <span>
#include <vector>

#include "codegen/cpu/microkernels.h"
#include "ir/builder.h"
#include "runtime/constant_store.h"
#include "runtime/weights.h"

namespace kiln::runtime {
namespace {

std::vector<float> random_values(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

TEST(ConstantStore, PacksInPiecesAndReportsEachPieceOnce) {
  // 1000 rows of 4096 Q4_1 values: 2560 bytes a row, so several 1 MiB pieces and a last group
  // of 8 rows.
  const int N = 1000, K = 4096;
  MemoryWeights weights;
  ASSERT_TRUE(weights.add_f32("w", DType::Q4_1, {N, K}, random_values(size_t(N) * K, 1)).ok());
  ir::Graph g("t");
  ir::Builder b(g);
  ir::Value* w = b.weight("w", ir::TensorType{DType::Q4_1, {N, K}});
  auto stored = weights.get("w", w->type);
  ASSERT_TRUE(stored.ok());

  ConstantStore store(weights);
  std::vector<std::span<const uint8_t>> pieces;
  store.on_weight_copied([&](std::span<const uint8_t> s) { pieces.push_back(s); });
  auto packed = store.packed(*w, stored->data());
  ASSERT_TRUE(packed.ok()) << packed.message();

  const size_t bytes = mk::packed_bytes(DType::Q4_1, N, K);
  std::vector<uint8_t> whole(bytes);
  ASSERT_TRUE(mk::pack_weights(DType::Q4_1, stored->data(), 2560, N, K, whole.data()).ok());
  EXPECT_EQ(std::memcmp(*packed, whole.data(), bytes), 0);

  // In order, back to back, covering the weight; every boundary inside it on a page.
  ASSERT_GE(pieces.size(), 2u);
  const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
  EXPECT_EQ(pieces.front().data(), stored->data());
  for (size_t i = 0; i + 1 < pieces.size(); ++i) {
    EXPECT_EQ(pieces[i].data() + pieces[i].size(), pieces[i + 1].data());
    EXPECT_EQ(uintptr_t(pieces[i + 1].data()) % page, 0u);
  }
  EXPECT_EQ(pieces.back().data() + pieces.back().size(), stored->data() + stored->size());
  EXPECT_EQ(store.packs(), 1);
}

TEST(ConstantStore, ConstantMadeOnlyToBePackedIsFreed) {
  const int K = 256;
  MemoryWeights weights;
  ASSERT_TRUE(weights.add_f32("a", DType::Q8_0, {64, K}, random_values(64 * K, 2)).ok());
  ASSERT_TRUE(weights.add_f32("b", DType::Q8_0, {32, K}, random_values(32 * K, 3)).ok());
  ir::Graph g("t");
  ir::Builder bld(g);
  ir::Value* a = bld.weight("a", ir::TensorType{DType::Q8_0, {64, K}});
  ir::Value* bw = bld.weight("b", ir::TensorType{DType::Q8_0, {32, K}});
  ir::Value* c = bld.concat({a, bw}, 0);
  ASSERT_NE(c, nullptr);

  ConstantStore store(weights);
  int copied = 0;
  store.on_weight_copied([&](std::span<const uint8_t>) { ++copied; });
  auto raw = store.peek(*c);
  ASSERT_TRUE(raw.ok()) << raw.message();
  EXPECT_EQ(copied, 2);  // both source weights, once evaluated
  const size_t raw_bytes = store.bytes();
  auto packed = store.packed(*c, *raw);
  ASSERT_TRUE(packed.ok()) << packed.message();
  store.release_unpinned(*c);
  EXPECT_EQ(store.bytes(), mk::packed_bytes(DType::Q8_0, 96, K));
  EXPECT_GT(raw_bytes, 0u);

  // Read as stored: pinned, not freed by release_unpinned; evaluated again after the release.
  auto pinned = store.get(*c);
  ASSERT_TRUE(pinned.ok());
  EXPECT_EQ(store.evaluations(), 2);
  store.release_unpinned(*c);
  auto again = store.get(*c);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *pinned);
  EXPECT_EQ(store.evaluations(), 2);
}

}  // namespace
}  // namespace kiln::runtime
