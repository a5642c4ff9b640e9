// `kiln inspect` on the real models (text and --json) and on make-model output, and --help.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "frontends/gguf/model_presets.h"
#include "tests/support/test_support.h"

namespace kiln {
namespace {

using nlohmann::json;

void expect_contains(const std::string& out, const std::string& s) {
  EXPECT_NE(out.find(s), std::string::npos) << "missing: " << s;
}

json inspect_json(const std::string& path) {
  auto r = test::run_kiln("inspect --json " + path);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  json j = json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  EXPECT_FALSE(j.is_discarded()) << "not JSON:\n" << r.out.substr(0, 2000);
  return j;
}

TEST(InspectCli, SmolLM2Text) {
  KILN_REQUIRE_MODEL(path, "smollm2");
  auto r = test::run_kiln("inspect " + path);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string& o = r.out;
  expect_contains(o, "format        GGUF v3, 33 metadata keys, 272 tensors, alignment 32");
  expect_contains(o, "architecture  llama");
  expect_contains(o, "\nhyperparameters\n");
  for (const char* s :
       {"block_count                              30",
        "embedding_length                         576",
        "feed_forward_length                      1536",
        "attention.head_count                     9", "attention.head_count_kv                  3",
        "rope.freq_base                           100000",
        "vocab_size                               49152"})
    expect_contains(o, s);
  expect_contains(o, "\ntokenizer\n");
  expect_contains(o, "model                                    gpt2");
  expect_contains(o, "vocab                                    49152 tokens");
  expect_contains(o, "merges                                   48900");
  expect_contains(o, "bos id                                   1 '<|im_start|>'");
  expect_contains(o, "\ntensors\n");
  expect_contains(o, "token_embd.weight                    q8_0    [576, 49152]");
  expect_contains(o, "blk.29.ffn_down.weight               q4_1    [1536, 576]");
  expect_contains(o, "totals        272 tensors, 134515008 parameters (134.5 M)");
  expect_contains(o, "q4_1     210 tensors");
}

TEST(InspectCli, SmolLM2Json) {
  KILN_REQUIRE_MODEL(path, "smollm2");
  json j = inspect_json(path);
  EXPECT_EQ(j["architecture"], "llama");
  EXPECT_EQ(j["gguf_version"], 3);
  EXPECT_EQ(j["totals"]["tensors"], 272);
  EXPECT_EQ(j["totals"]["parameters"], 134515008);
  EXPECT_EQ(j["totals"]["by_type"]["q4_1"]["tensors"], 210);
  EXPECT_EQ(j["totals"]["by_type"]["q8_0"]["tensors"], 1);
  EXPECT_EQ(j["totals"]["by_type"]["f32"]["tensors"], 61);
  EXPECT_EQ(j["hyperparameters"]["block_count"], 30);
  EXPECT_EQ(j["hyperparameters"]["embedding_length"], 576);
  EXPECT_EQ(j["hyperparameters"]["attention.head_count_kv"], 3);
  EXPECT_EQ(j["hyperparameters"]["rope.freq_base"], 100000.0);
  EXPECT_EQ(j["metadata"]["llama.vocab_size"], 49152);
  EXPECT_FALSE(j["metadata"].contains("tokenizer.ggml.tokens"));  // summarized, not dumped
  EXPECT_EQ(j["tokenizer"]["model"], "gpt2");
  EXPECT_EQ(j["tokenizer"]["vocab"], "49152 tokens");
  ASSERT_EQ(j["tensors"].size(), 272u);
  EXPECT_EQ(j["tensors"][0]["name"], "token_embd.weight");
  EXPECT_EQ(j["tensors"][0]["type"], "q8_0");
  EXPECT_EQ(j["tensors"][0]["shape"], json::array({576, 49152}));
  EXPECT_EQ(j["tensors"][0]["bytes"], 30081024);
  uint64_t total = 0;
  for (const json& t : j["tensors"]) total += t["bytes"].get<uint64_t>();
  EXPECT_EQ(j["totals"]["bytes"], total);
}

TEST(InspectCli, Gemma3Text) {
  KILN_REQUIRE_MODEL(path, "gemma3");
  auto r = test::run_kiln("inspect " + path);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string& o = r.out;
  expect_contains(o, "architecture  gemma3");
  for (const char* s : {"block_count                              18",
                        "embedding_length                         640",
                        "attention.key_length                     256",
                        "attention.sliding_window                 512",
                        "attention.head_count_kv                  1"})
    expect_contains(o, s);
  expect_contains(o, "model                                    llama");
  expect_contains(o, "vocab                                    262144 tokens");
  expect_contains(o, "bos id                                   2 '<bos>'");
  expect_contains(o, "token_embd.weight                    q8_0    [640, 262144]");
  expect_contains(o, "blk.0.attn_q.weight                  q5_0    [640, 1024]");
  expect_contains(o, "totals        236 tensors, 268098176 parameters (268.1 M)");
}

TEST(InspectCli, Gemma3Json) {
  KILN_REQUIRE_MODEL(path, "gemma3");
  json j = inspect_json(path);
  EXPECT_EQ(j["architecture"], "gemma3");
  EXPECT_EQ(j["totals"]["tensors"], 236);
  EXPECT_EQ(j["totals"]["parameters"], 268098176);
  for (const char* t : {"q4_k", "q5_0", "q6_k", "q8_0", "f32"})
    EXPECT_TRUE(j["totals"]["by_type"].contains(t)) << t;
  EXPECT_EQ(j["hyperparameters"]["block_count"], 18);
  EXPECT_EQ(j["hyperparameters"]["attention.sliding_window"], 512);
  EXPECT_EQ(j["hyperparameters"]["attention.key_length"], 256);
  EXPECT_EQ(j["tokenizer"]["model"], "llama");
  EXPECT_EQ(j["tokenizer"]["vocab"], "262144 tokens");
  EXPECT_EQ(j["tensors"].size(), 236u);
}

// Parameters of a preset with a given vocab, from its shapes.
uint64_t preset_parameters(const gguf::ModelPreset& p, uint64_t vocab) {
  uint64_t e = p.n_embd, q = uint64_t(p.n_head) * p.head_dim,
           kv = uint64_t(p.n_head_kv) * p.head_dim;
  uint64_t layer = e + e * q + 2 * e * kv + q * e + e + 3 * e * p.n_ff;
  if (p.arch == "qwen2") layer += q + 2 * kv;
  if (p.arch == "qwen3" || p.arch == "gemma3") layer += 2 * p.head_dim;
  if (p.arch == "gemma3") layer += 2 * e;
  return e * vocab * (p.tied_embeddings ? 1 : 2) + e + p.n_layer * layer;
}

TEST(InspectCli, MadeModelsOfEveryTinyPreset) {
  for (const gguf::ModelPreset& p : gguf::model_presets()) {
    if (p.n_vocab) continue;  // the full-size ones are covered by make_model_test
    std::string path = test::temp_dir() + "/inspect-" + std::string(p.name) + ".gguf";
    auto r =
        test::run_kiln("make-model --preset " + std::string(p.name) + " --quant q8_0 -o " + path);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    json j = inspect_json(path);
    EXPECT_EQ(j["architecture"], std::string(p.arch));
    std::string vocab = j["tokenizer"]["vocab"];
    uint64_t n_vocab = std::stoull(vocab);
    EXPECT_EQ(j["totals"]["parameters"], preset_parameters(p, n_vocab)) << p.name;
    EXPECT_EQ(j["hyperparameters"]["block_count"], p.n_layer);
    r = test::run_kiln("inspect " + path);
    EXPECT_EQ(r.exit_code, 0);
    expect_contains(r.out, "architecture  " + std::string(p.arch));
    expect_contains(r.out, "chat template");
  }
}

TEST(InspectCli, Help) {
  auto r = test::run_kiln("inspect --help");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  expect_contains(r.out, "--json");
  expect_contains(r.out, "model");
  r = test::run_kiln("make-model --help");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  for (const char* s : {"--preset", "--quant", "--seed", "--output", "--tokenizer-from",
                        "smollm2-135m", "gemma3-270m", "tiny-llama", "q8_0"})
    expect_contains(r.out, s);
  r = test::run_kiln("--help");
  EXPECT_EQ(r.exit_code, 0);
  expect_contains(r.out, "inspect");
  expect_contains(r.out, "make-model");
  r = test::run_kiln("inspect");  // the model argument is required
  EXPECT_NE(r.exit_code, 0);
}

}  // namespace
}  // namespace kiln
