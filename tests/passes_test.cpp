#include <gtest/gtest.h>

#include <random>

#include "ir/builder.h"
#include "ir/parser.h"
#include "ir/printer.h"
#include "ir/verifier.h"
#include "passes/memory_plan.h"
#include "passes/pass_manager.h"
#include "passes/stats.h"
#include "tests/passes_test_graphs.h"

namespace kiln::passes {
namespace {

using ir::Graph;
using ir::Node;
using ir::Op;
using ir::Value;

[[maybe_unused]] std::unique_ptr<Graph> parse_ok(const char* text) {
  auto g = ir::parse(text);
  EXPECT_TRUE(g.ok()) << g.message();
  return g.ok() ? std::move(*g) : nullptr;
}

std::string run_ok(Graph& g, const char* pipeline, PassContext* ctx_out = nullptr) {
  PassContext ctx;
  ctx.options.verify_each = true;
  Status st = run_pipeline(pipeline, g, ctx);
  EXPECT_TRUE(st.ok()) << st.message();
  if (ctx_out) *ctx_out = ctx;
  return ir::print(g);
}

[[maybe_unused]] int count_op(const Graph& g, Op op) {
  return int(g.nodes_of(op).size());
}

// ---- pass manager ------------------------------------------------------------------------

TEST(PassManager, ParsesPipelines) {
  auto p = Pipeline::parse("default");
  ASSERT_TRUE(p.ok()) << p.message();
  EXPECT_EQ(p->str(), kDefaultPipeline);
  auto q = Pipeline::parse(" canonicalize , fuse ");
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->str(), "canonicalize,fuse");
  EXPECT_TRUE(Pipeline::parse("none")->passes().empty());
  EXPECT_TRUE(Pipeline::parse("")->passes().empty());
  auto bad = Pipeline::parse("canonicalize,frobnicate");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("unknown pass 'frobnicate'"), std::string::npos) << bad.message();
  EXPECT_NE(bad.message().find("plan-memory"), std::string::npos) << bad.message();
}

TEST(PassManager, TimesDumpsAndVerifies) {
  auto g = test::llama_graph({.layers = 1});
  ASSERT_TRUE(g);
  PassContext ctx;
  ctx.options.verify_each = true;
  std::vector<std::string> dumped;
  ctx.dump_after = {"fuse"};
  ctx.dump = [&](std::string_view pass, const Graph& gr, const PassContext&) {
    dumped.push_back(std::string(pass));
    EXPECT_TRUE(ir::verify(gr).ok());
  };
  Status st = run_pipeline("default", *g, ctx);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(dumped, std::vector<std::string>{"fuse"});
  ASSERT_EQ(ctx.timings.size(), 4u);
  EXPECT_EQ(ctx.timings[2].pass, "fuse");
  ASSERT_TRUE(ctx.plan.has_value());
  EXPECT_GT(ctx.stats["fuse.regions"], 0);

  ctx.dump_after = {"all"};
  dumped.clear();
  ASSERT_TRUE(run_pipeline("canonicalize,canonicalize", *g, ctx).ok());
  EXPECT_EQ(dumped.size(), 2u);
  EXPECT_FALSE(ctx.plan.has_value()) << "a pass after plan-memory drops the plan";
}

TEST(PassManager, RejectsAnInvalidInputGraph) {
  Graph g("bad");
  ir::Builder b(g);
  Value* x = b.input("x", {DType::F32, {4}});
  Value* y = b.silu(x);
  y->type.shape = {5};  // inference says [4]
  b.output(y, "y");
  PassContext ctx;
  ctx.options.verify_each = true;
  Status st = run_pipeline("canonicalize", g, ctx);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("before the first pass"), std::string::npos) << st.message();
}

// ---- fuse on the hand-built Llama decoder ---------------------------------------------------

TEST(Fuse, LlamaDecodeLayerIsFiveKernels) {
  auto g = test::llama_graph({.layers = 3});
  ASSERT_TRUE(g);
  PassContext ctx;
  run_ok(*g, "default", &ctx);
  GraphStats s = graph_stats(*g);
  EXPECT_EQ(s.layers(), 3);
  EXPECT_EQ(s.max_kernels_per_layer(), 5) << ir::print(*g);
  EXPECT_EQ(s.min_kernels_per_layer(), 5);
  EXPECT_EQ(s.kernels_by_scope["token_embd"], 1);
  EXPECT_EQ(s.kernels_by_scope["logits"], 1) << "rows gather + final norm + lm head: one kernel";
  EXPECT_EQ(s.kernels, 3 * 5 + 2);
  // Every compute node is in a region; only free ops, sources and sinks stay outside.
  for (const auto& n : g->nodes())
    EXPECT_TRUE(n->body || n->has(ir::kSource) || n->has(ir::kSink) || n->has(ir::kView) ||
                n->op == Op::Concat)
        << ir::print_node(*n);
}

TEST(Fuse, MixedDtypeAttentionStaysWithinSevenKernels) {
  // Q4_K_M-style: attn_v has its own type, so V is its own contraction with the norm copied in.
  auto g = test::llama_graph({.layers = 2,
                              .embd = 256,
                              .heads = 4,
                              .kv_heads = 2,
                              .ffn = 512,
                              .vocab = 1024,
                              .wtype = DType::Q4_K,
                              .vtype = DType::Q6_K});
  ASSERT_TRUE(g);
  run_ok(*g, "default");
  GraphStats s = graph_stats(*g);
  EXPECT_EQ(s.max_kernels_per_layer(), 6) << ir::print(*g);
  EXPECT_EQ(s.kernels_by_scope["logits"], 1);
}

TEST(Fuse, PrefillAndBatchedDecodeKeepTheShape) {
  for (int64_t tokens : {1, 16})
    for (int64_t batch : {1, 4}) {
      auto g = test::llama_graph({.layers = 2,
                                  .batch = batch,
                                  .tokens = tokens,
                                  .embd = 128,
                                  .heads = 4,
                                  .kv_heads = 2,
                                  .head_dim = 32,
                                  .ffn = 256,
                                  .vocab = 512,
                                  .ctx = 64,
                                  .wtype = DType::Q8_0,
                                  .vtype = DType::Q8_0});
      ASSERT_TRUE(g);
      run_ok(*g, "default");
      GraphStats s = graph_stats(*g);
      EXPECT_EQ(s.max_kernels_per_layer(), 5) << "T=" << tokens << " B=" << batch;
      EXPECT_EQ(s.kernels, 2 * 5 + 2);
    }
}

TEST(Fuse, FusedGraphRoundTripsThroughText) {
  auto g = test::llama_graph({.layers = 2,
                              .embd = 64,
                              .heads = 2,
                              .kv_heads = 1,
                              .head_dim = 32,
                              .ffn = 128,
                              .vocab = 256,
                              .ctx = 16,
                              .wtype = DType::Q8_0,
                              .vtype = DType::Q8_0});
  ASSERT_TRUE(g);
  std::string text = run_ok(*g, "default");
  auto parsed = ir::parse(text);
  ASSERT_TRUE(parsed.ok()) << parsed.message();
  EXPECT_EQ(ir::print(**parsed), text);
  // Fusing again changes nothing.
  std::string again = run_ok(**parsed, "fuse");
  EXPECT_EQ(again, text);
}

TEST(Fuse, UnfusedPipelineCountsComputeNodes) {
  auto g = test::llama_graph({.layers = 1,
                              .embd = 64,
                              .heads = 2,
                              .kv_heads = 1,
                              .head_dim = 32,
                              .ffn = 128,
                              .vocab = 256,
                              .ctx = 16,
                              .wtype = DType::Q8_0,
                              .vtype = DType::Q8_0});
  ASSERT_TRUE(g);
  run_ok(*g, "canonicalize,merge-parallel-matmuls");
  GraphStats before = graph_stats(*g);
  run_ok(*g, "fuse");
  GraphStats after = graph_stats(*g);
  EXPECT_GT(before.kernels, after.kernels);
  // Fusion moves work into kernels; with every norm feeding one (merged) contraction, nothing is
  // recomputed, so the arithmetic is the same.
  EXPECT_DOUBLE_EQ(before.flops, after.flops);
  // Unmerged, the norm is recomputed in each of Q, K, V and gate, up: a little more arithmetic.
  auto g2 = test::llama_graph({.layers = 1,
                               .embd = 64,
                               .heads = 2,
                               .kv_heads = 1,
                               .head_dim = 32,
                               .ffn = 128,
                               .vocab = 256,
                               .ctx = 16,
                               .wtype = DType::Q8_0,
                               .vtype = DType::Q8_0});
  double unmerged = graph_stats(*g2).flops;
  run_ok(*g2, "fuse");
  EXPECT_GT(graph_stats(*g2).flops, unmerged);
  EXPECT_LT(graph_stats(*g2).flops, unmerged * 1.01);
}

// ---- merge-parallel-matmuls ------------------------------------------------------------------

TEST(Merge, SmolLm2LayerMergesQkvAndGateUp) {
  auto g = test::llama_graph({.layers = 2});
  ASSERT_TRUE(g);
  PassContext ctx;
  run_ok(*g, "canonicalize,merge-parallel-matmuls", &ctx);
  EXPECT_EQ(ctx.stats["merge-parallel-matmuls.groups"], 4);
  EXPECT_EQ(ctx.stats["merge-parallel-matmuls.merged"], 10);
  EXPECT_EQ(count_op(*g, Op::MulMat), 2 * 4 + 1);
  Value* qkv = g->find_value("blk1.q_k_v");
  ASSERT_NE(qkv, nullptr);
  EXPECT_EQ(qkv->type.str(), "f32[1, 1, 960]");
}

// ---- memory plan -------------------------------------------------------------------------------

// Runs the graph over a byte-tagged arena: every value's bytes must still hold what its producer
// wrote when a node reads them, and every output at the end. Independent of validate().
void simulate(const MemoryPlan& plan, const Graph& g) {
  std::vector<int> tag(plan.arena_bytes, -1);
  std::unordered_map<const Value*, const PlanEntry*> entry;
  std::unordered_map<const Value*, int> version;
  int i = 0;
  for (const auto& n : g.nodes()) {
    for (int r = 0; r < int(n->results.size()); ++r) {
      const PlanEntry* e = plan.find(i, r);
      ASSERT_NE(e, nullptr) << i << ":" << r;
      entry[n->results[size_t(r)]] = e;
      Value* v = n->results[size_t(r)];
      if (e->storage == Storage::kAlias)
        version[v] = version[g.nodes()[size_t(e->of_node)]->results[size_t(e->of_result)]];
      else
        version[v] = v->id;
    }
    ++i;
  }
  auto write = [&](const Value* v) {
    const PlanEntry* e = entry[v];
    if (e->storage != Storage::kArena && e->storage != Storage::kInPlace) return;
    for (uint64_t b = e->offset; b < e->offset + e->bytes; ++b) tag[b] = version[v];
  };
  auto check = [&](const Value* v, const std::string& where) {
    const PlanEntry* e = entry[v];
    if (e->storage == Storage::kExternal) return;
    for (uint64_t b = e->offset; b < e->offset + e->bytes; ++b)
      if (tag[b] != version[v]) {
        ADD_FAILURE() << where << ": value %" << v->id << " clobbered at arena byte " << b;
        return;
      }
  };
  for (const auto& n : g.nodes())
    if (n->op == Op::Input) write(n->result());
  i = 0;
  for (const auto& n : g.nodes()) {
    for (Value* o : n->operands) check(o, "node " + std::to_string(i));
    if (n->op != Op::Input)
      for (Value* r : n->results) write(r);
    ++i;
  }
  for (const auto& n : g.nodes())
    if (n->has(ir::kSink))
      for (Value* o : n->operands) check(o, "end");
}

// Random graphs of the ops planning cares about: elementwise (in-place), reductions, contractions,
// free views and reshapes, copies (permute, slice), several outputs.
std::unique_ptr<Graph> random_graph(uint32_t seed) {
  std::mt19937 rng(seed);
  auto pick = [&](int n) { return int(rng() % uint32_t(n)); };
  auto g = std::make_unique<Graph>("random");
  ir::Builder b(*g);
  const int64_t widths[] = {8, 16, 32};
  std::vector<Value*> pool;
  int inputs = 1 + pick(3);
  for (int i = 0; i < inputs; ++i)
    pool.push_back(
        b.input("in" + std::to_string(i), {DType::F32, {int64_t(1 + pick(4)), widths[pick(3)]}}));
  int steps = 4 + pick(30);
  for (int s = 0; s < steps; ++s) {
    Value* x = pool[size_t(pick(int(pool.size())))];
    const int64_t m = x->type.dim(0), k = x->type.dim(-1);
    Value* y = nullptr;
    switch (pick(11)) {
      case 0:
        y = b.silu(x);
        break;
      case 1:
        y = b.scale(x, 0.5);
        break;
      case 2:
        y = b.rms_norm(x, 1e-5);
        break;
      case 3:
        y = b.softmax(x, nullptr, 1.0);
        break;
      case 4:
        y = b.mul_mat(x, b.weight("w" + std::to_string(s), {DType::F16, {widths[pick(3)], k}}));
        break;
      case 5: {
        Value* other = nullptr;
        for (Value* p : pool)
          if (p != x && p->type == x->type && pick(2)) other = p;
        y = other ? b.add(x, other)
                  : b.mul(x, b.weight("b" + std::to_string(s), {DType::F32, {k}}));
        break;
      }
      case 6:
        y = (m * k) % 8 == 0 ? b.reshape(x, {m * k / 8, 8}) : b.exp(x);
        break;
      case 7:
        y = m > 1 ? b.view(x, k, {m - 1, k}) : b.exp(x);
        break;
      case 8:
        y = b.permute(x, {1, 0});
        break;
      case 9:
        y = k > 8 ? b.slice(x, 1, 8, k - 8) : b.tanh(x);
        break;
      default:
        y = b.add(x, x);
        break;
    }
    if (!y) break;
    pool.push_back(y);
  }
  b.output(pool.back(), "out");
  int extra = pick(3);
  for (int i = 0; i < extra; ++i)
    b.output(pool[size_t(pick(int(pool.size())))], "extra" + std::to_string(i));
  EXPECT_TRUE(b.ok()) << b.status().message();
  return g;
}

TEST(PlanMemory, RandomGraphsNeverOverlapLiveBuffers) {
  int inplace = 0, aliases = 0;
  for (uint32_t seed = 1; seed <= 300; ++seed) {
    for (const char* pipeline : {"plan-memory", "canonicalize,fuse,plan-memory"}) {
      auto g = random_graph(seed);
      PassContext ctx;
      ctx.options.verify_each = true;
      Status st = run_pipeline(pipeline, *g, ctx);
      ASSERT_TRUE(st.ok()) << "seed " << seed << " " << pipeline << ": " << st.message() << "\n"
                           << ir::print(*g);
      const MemoryPlan& p = *ctx.plan;
      Status v = validate(p, *g);
      ASSERT_TRUE(v.ok()) << "seed " << seed << " " << pipeline << ": " << v.message() << "\n"
                          << ir::print(*g) << p.str();
      simulate(p, *g);
      ASSERT_FALSE(::testing::Test::HasFailure()) << "seed " << seed << "\n"
                                                  << ir::print(*g) << p.str();
      EXPECT_LE(p.lower_bound_bytes, p.arena_bytes);
      EXPECT_LE(p.arena_bytes, p.naive_bytes);
      for (const PlanEntry& e : p.entries) {
        inplace += e.storage == Storage::kInPlace;
        aliases += e.storage == Storage::kAlias;
      }
    }
  }
  EXPECT_GT(inplace, 100);  // the generator exercises what it should
  EXPECT_GT(aliases, 100);
}

TEST(PlanMemory, ValidatorRejectsOverlapsAndBadEntries) {
  auto g = random_graph(7);
  auto p = plan_memory(*g);
  ASSERT_TRUE(p.ok()) << p.message();
  ASSERT_TRUE(validate(*p, *g).ok());
  // Two arena buffers whose lifetimes overlap, forced to one offset.
  std::vector<std::pair<size_t, size_t>> live_pairs;
  for (size_t a = 0; a < p->entries.size(); ++a)
    for (size_t b = a + 1; b < p->entries.size(); ++b) {
      const PlanEntry &x = p->entries[a], &y = p->entries[b];
      bool y_is_source = false;
      for (const PlanEntry& e : p->entries)
        y_is_source |= e.of_node == y.node && e.of_result == y.result;
      if (x.storage == Storage::kArena && y.storage == Storage::kArena && x.first <= y.last &&
          y.first <= x.last && y.first > x.first && !y_is_source)
        live_pairs.push_back({a, b});
    }
  ASSERT_FALSE(live_pairs.empty());
  MemoryPlan bad = *p;
  bad.entries[live_pairs[0].second].offset = bad.entries[live_pairs[0].first].offset;
  Status st = validate(bad, *g);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("share arena bytes"), std::string::npos) << st.message();

  bad = *p;
  bad.entries.pop_back();
  EXPECT_FALSE(validate(bad, *g).ok());
  bad = *p;
  for (PlanEntry& e : bad.entries)
    if (e.storage == Storage::kArena) {
      e.offset += 4;
      break;
    }
  EXPECT_FALSE(validate(bad, *g).ok());
}

TEST(PlanMemory, TextFormSurvivesPrintAndParse) {
  auto g = test::llama_graph({.layers = 2,
                              .embd = 64,
                              .heads = 2,
                              .kv_heads = 1,
                              .head_dim = 32,
                              .ffn = 128,
                              .vocab = 256,
                              .ctx = 16,
                              .wtype = DType::Q8_0,
                              .vtype = DType::Q8_0});
  ASSERT_TRUE(g);
  PassContext ctx;
  std::string text = run_ok(*g, "default", &ctx);
  ASSERT_TRUE(ctx.plan.has_value());
  text += ctx.plan->str();
  auto parsed = ir::parse(text);
  ASSERT_TRUE(parsed.ok()) << parsed.message();
  auto plan = MemoryPlan::parse(text);
  ASSERT_TRUE(plan.ok()) << plan.message();
  EXPECT_EQ(plan->str(), ctx.plan->str());
  Status v = validate(*plan, **parsed);
  EXPECT_TRUE(v.ok()) << v.message();
  simulate(*plan, **parsed);

  auto bad =
      MemoryPlan::parse("// plan arena=64 naive=64 lower_bound=64 align=64\n// plan 3:x arena\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("line 2"), std::string::npos) << bad.message();
}

TEST(PlanMemory, SmolLm2DecodeFigures) {
  auto g = test::llama_graph({.layers = 30});
  ASSERT_TRUE(g);
  PassContext ctx;
  run_ok(*g, "default", &ctx);
  const MemoryPlan& p = *ctx.plan;
  ASSERT_TRUE(validate(p, *g).ok());
  simulate(p, *g);
  GraphStats s = graph_stats(*g);
  EXPECT_EQ(s.layers(), 30);
  EXPECT_EQ(s.max_kernels_per_layer(), 5);
  EXPECT_EQ(s.kernels, 30 * 5 + 2);
  // The logits (49152 floats) dominate; every other live set is a few KiB.
  EXPECT_EQ(p.arena_bytes, p.lower_bound_bytes);
  EXPECT_LT(p.arena_bytes, p.naive_bytes);
  std::printf("SmolLM2-135M decode (hand-built):\n%s", format_stats(s, &p).c_str());
  auto unfused = test::llama_graph({.layers = 30});
  auto up = plan_memory(*unfused);
  ASSERT_TRUE(up.ok());
  std::printf("unfused: arena %llu naive %llu lower bound %llu\n",
              (unsigned long long)up->arena_bytes, (unsigned long long)up->naive_bytes,
              (unsigned long long)up->lower_bound_bytes);
}

// ---- canonicalize ----------------------------------------------------------------------------

TEST(Canonicalize, ReachesAFixpointAndIsIdempotent) {
  for (uint32_t seed = 1; seed <= 100; ++seed) {
    auto g = random_graph(seed);
    std::string once = run_ok(*g, "canonicalize");
    std::string twice = run_ok(*g, "canonicalize");
    EXPECT_EQ(once, twice) << "seed " << seed;
  }
}

TEST(Canonicalize, KeepsStoresWhoseResultIsUnused) {
  auto g = parse_ok(R"(graph g {
  %pos = input {name="pos"} : i32[1, 1]
  %seq = input {name="seq"} : i32[1]
  %k = input {name="k"} : f32[1, 1, 1, 8]
  %c = state {name="cache_k.0"} : f16[1, 4, 1, 8]
  %w = kv_write %c, %k, %pos, %seq : f16[1, 4, 1, 8]
  %y = silu %k : f32[1, 1, 1, 8]
  output %y {name="y"}
}
)");
  ASSERT_TRUE(g);
  run_ok(*g, "canonicalize,fuse,canonicalize");
  EXPECT_EQ(graph_stats(*g).kernels, 2);
  int stores = 0;
  for (const auto& n : g->nodes())
    if (n->body)
      for (const auto& b : n->body->nodes()) stores += b->op == Op::KvWrite;
  EXPECT_EQ(stores, 1);
}

}  // namespace
}  // namespace kiln::passes
