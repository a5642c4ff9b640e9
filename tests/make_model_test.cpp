// kiln make-model: every preset writes a file that reads back with the keys, tensor names, shapes
// and types llama.cpp expects for its architecture, with weights at a trained model's scale.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "frontends/gguf/gguf_file.h"
#include "frontends/gguf/make_model.h"
#include "frontends/gguf/quant.h"
#include "tests/support/test_support.h"

namespace kiln::gguf {
namespace {

struct Expected {
  std::string name;
  std::vector<uint64_t> dims;
};

// The tensors llama.cpp's loader asks for (llama-model.cpp), written out independently of
// make_model.cpp's own plan.
std::vector<Expected> expected_tensors(const ModelPreset& p, uint64_t vocab) {
  std::string a(p.arch);
  uint64_t e = p.n_embd, q = uint64_t(p.n_head) * p.head_dim,
           kv = uint64_t(p.n_head_kv) * p.head_dim;
  std::vector<Expected> t = {{"token_embd.weight", {e, vocab}}, {"output_norm.weight", {e}}};
  if (!p.tied_embeddings) t.push_back({"output.weight", {e, vocab}});
  for (uint32_t l = 0; l < p.n_layer; ++l) {
    std::string b = "blk." + std::to_string(l) + ".";
    for (Expected x : std::vector<Expected>{{"attn_norm.weight", {e}},
                                            {"attn_q.weight", {e, q}},
                                            {"attn_k.weight", {e, kv}},
                                            {"attn_v.weight", {e, kv}},
                                            {"attn_output.weight", {q, e}},
                                            {"ffn_norm.weight", {e}},
                                            {"ffn_gate.weight", {e, p.n_ff}},
                                            {"ffn_up.weight", {e, p.n_ff}},
                                            {"ffn_down.weight", {p.n_ff, e}}})
      t.push_back({b + x.name, x.dims});
    if (a == "qwen2") {
      t.push_back({b + "attn_q.bias", {q}});
      t.push_back({b + "attn_k.bias", {kv}});
      t.push_back({b + "attn_v.bias", {kv}});
    }
    if (a == "qwen3" || a == "gemma3") {
      t.push_back({b + "attn_q_norm.weight", {p.head_dim}});
      t.push_back({b + "attn_k_norm.weight", {p.head_dim}});
    }
    if (a == "gemma3") {
      t.push_back({b + "post_attention_norm.weight", {e}});
      t.push_back({b + "post_ffw_norm.weight", {e}});
    }
  }
  return t;
}

// Exactly the keys a file of this architecture carries (as the real GGUF files do).
std::set<std::string> expected_keys(const ModelPreset& p) {
  std::string a(p.arch);
  std::set<std::string> k = {"general.architecture",
                             "general.type",
                             "general.name",
                             "general.file_type",
                             "general.quantization_version",
                             "tokenizer.ggml.model",
                             "tokenizer.ggml.pre",
                             "tokenizer.ggml.tokens",
                             "tokenizer.ggml.token_type",
                             "tokenizer.ggml.bos_token_id",
                             "tokenizer.ggml.eos_token_id",
                             "tokenizer.ggml.padding_token_id",
                             "tokenizer.ggml.add_bos_token",
                             "tokenizer.ggml.add_eos_token",
                             "tokenizer.chat_template"};
  for (const char* s : {"context_length", "embedding_length", "block_count", "feed_forward_length",
                        "attention.head_count", "attention.head_count_kv", "rope.freq_base",
                        "attention.layer_norm_rms_epsilon"})
    k.insert(a + "." + s);
  if (a == "llama") k.insert({a + ".rope.dimension_count", a + ".vocab_size"});
  if (a == "qwen3" || a == "gemma3")
    k.insert({a + ".attention.key_length", a + ".attention.value_length"});
  if (a == "gemma3") {
    k.insert({a + ".attention.sliding_window", "tokenizer.ggml.scores",
              "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.add_space_prefix"});
  } else {
    k.insert({"tokenizer.ggml.merges", "tokenizer.ggml.eot_token_id"});
  }
  return k;
}

Result<std::unique_ptr<GgufFile>> make(const std::string& preset, DType quant, uint64_t seed,
                                       const std::string& name, unsigned threads = 0,
                                       const Metadata* tokenizer = nullptr) {
  const ModelPreset* p = find_preset(preset);
  if (!p) return make_error("no preset ", preset);
  MakeModelOptions o;
  o.quant = quant;
  o.seed = seed;
  o.threads = threads;
  o.tokenizer_from = tokenizer;
  KILN_ASSIGN_OR_RETURN(GgufWriter w, make_model(*p, o));
  std::string path = test::temp_dir() + "/" + name;
  KILN_RETURN_IF_ERROR(w.write(path));
  return GgufFile::open(path);
}

// Dequantized values of the first `max_rows` rows of a tensor.
std::vector<float> values(const GgufFile& f, const TensorInfo& t, uint64_t max_rows) {
  uint64_t rows = std::min(t.rows(), max_rows);
  uint64_t rb = *row_bytes(t.type, t.dims[0]);
  std::vector<float> v(size_t(rows * t.dims[0]));
  for (uint64_t r = 0; r < rows; ++r) {
    Status st = quant::dequantize_row(t.type, f.data(t) + r * rb, v.data() + r * t.dims[0],
                                      size_t(t.dims[0]));
    EXPECT_TRUE(st.ok()) << t.name << ": " << st.message();
  }
  return v;
}

// Checks a file written for `p` in `quant`: keys, hyperparameters, tensors, types, weights.
void check_model(const GgufFile& f, const ModelPreset& p, DType quant, uint64_t max_rows) {
  const Metadata& md = f.metadata();
  std::string a(p.arch);
  std::set<std::string> keys;
  for (const auto& [k, v] : md.entries()) keys.insert(k);
  EXPECT_EQ(keys, expected_keys(p));
  EXPECT_EQ(f.architecture(), a);
  EXPECT_EQ(*md.get_uint(a + ".block_count"), p.n_layer);
  EXPECT_EQ(*md.get_uint(a + ".embedding_length"), p.n_embd);
  EXPECT_EQ(*md.get_uint(a + ".feed_forward_length"), p.n_ff);
  EXPECT_EQ(*md.get_uint(a + ".attention.head_count"), p.n_head);
  EXPECT_EQ(*md.get_uint(a + ".attention.head_count_kv"), p.n_head_kv);
  EXPECT_EQ(*md.get_uint(a + ".context_length"), p.context_length);
  EXPECT_FLOAT_EQ(float(*md.get_float(a + ".rope.freq_base")), p.rope_freq_base);
  EXPECT_FLOAT_EQ(float(*md.get_float(a + ".attention.layer_norm_rms_epsilon")), p.norm_eps);
  EXPECT_EQ(*md.get_uint("general.file_type"), file_type_of(quant));
  if (a == "gemma3") {
    EXPECT_EQ(*md.get_uint(a + ".attention.sliding_window"), p.sliding_window);
    EXPECT_EQ(*md.get_uint(a + ".attention.key_length"), p.head_dim);
  }
  uint64_t vocab = (*md.get_string_array("tokenizer.ggml.tokens"))->size();
  if (p.n_vocab) {
    EXPECT_EQ(vocab, p.n_vocab);
  }
  if (a == "llama") {
    EXPECT_EQ(*md.get_uint(a + ".vocab_size"), vocab);
    EXPECT_EQ(*md.get_uint(a + ".rope.dimension_count"), p.head_dim);
  }

  auto want = expected_tensors(p, vocab);
  ASSERT_EQ(f.tensors().size(), want.size());
  for (const Expected& x : want) {
    const TensorInfo* t = f.find_tensor(x.name);
    ASSERT_NE(t, nullptr) << x.name;
    EXPECT_EQ(t->dims, x.dims) << x.name;
    EXPECT_EQ(t->type, storage_type(quant, x.dims)) << x.name;
    if (x.dims.size() == 1) {
      EXPECT_EQ(t->type, DType::F32) << x.name;
    }

    std::vector<float> v = values(f, *t, max_rows);
    double sum = 0, sq = 0;
    size_t nonzero = 0;
    for (float y : v) {
      ASSERT_TRUE(std::isfinite(y)) << x.name;
      sum += y;
      sq += double(y) * y;
      nonzero += y != 0.0f;
    }
    double mean = sum / double(v.size()), sd = std::sqrt(sq / double(v.size()) - mean * mean);
    EXPECT_GT(nonzero, v.size() / 2) << x.name << " is mostly zeros";
    bool norm = x.name.find("norm") != std::string::npos;
    bool bias = x.name.find(".bias") != std::string::npos;
    if (norm) {
      EXPECT_NEAR(mean, 1.0, 0.02) << x.name;
      EXPECT_NEAR(sd, 0.05, 0.02) << x.name;
    } else if (bias) {
      EXPECT_NEAR(mean, 0.0, 0.02) << x.name;
      EXPECT_NEAR(sd, 0.05, 0.02) << x.name;
    } else {  // a matrix: sigma = 1/sqrt(row length), within the per-row spread and quant error
      double sigma = 1.0 / std::sqrt(double(x.dims[0]));
      EXPECT_NEAR(mean, 0.0, 0.2 * sigma) << x.name;
      EXPECT_GT(sd, 0.75 * sigma) << x.name;
      EXPECT_LT(sd, 1.25 * sigma) << x.name;
    }
  }
}

struct PresetCase {
  std::string preset;
  DType quant;
};
void PrintTo(const PresetCase& c, std::ostream* os) {
  *os << c.preset << " " << dtype_name(c.quant);
}

class MakeModel : public testing::TestWithParam<PresetCase> {};

TEST_P(MakeModel, WritesTheArchitecturesKeysTensorsAndWeights) {
  const PresetCase& c = GetParam();
  const ModelPreset* p = find_preset(c.preset);
  ASSERT_NE(p, nullptr);
  auto f = make(c.preset, c.quant, 7, c.preset + "-" + std::string(dtype_name(c.quant)) + ".gguf");
  ASSERT_TRUE(f.ok()) << f.message();
  // The full-size presets are checked on their first rows; the tiny ones whole.
  check_model(**f, *p, c.quant, p->n_vocab ? 64 : UINT64_MAX);
}

std::vector<PresetCase> preset_cases() {
  std::vector<PresetCase> out;
  for (const char* p : {"tiny-llama", "tiny-qwen2", "tiny-qwen3", "tiny-gemma3"})
    for (DType q :
         {DType::F32, DType::F16, DType::BF16, DType::Q4_0, DType::Q8_0, DType::Q4_K, DType::Q6_K})
      out.push_back({p, q});
  out.push_back({"smollm2-135m", DType::Q8_0});
  out.push_back({"gemma3-270m", DType::Q8_0});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Presets, MakeModel, testing::ValuesIn(preset_cases()),
                         [](const testing::TestParamInfo<PresetCase>& i) {
                           std::string s =
                               i.param.preset + "_" + std::string(dtype_name(i.param.quant));
                           for (char& c : s)
                             if (c == '-') c = '_';
                           return s;
                         });

TEST(MakeModel, EveryTypeWrites) {
  for (DType q : make_model_types()) {
    auto f = make("tiny-qwen3", q, 3, "all-" + std::string(dtype_name(q)) + ".gguf");
    ASSERT_TRUE(f.ok()) << dtype_name(q) << ": " << f.message();
    EXPECT_EQ((*f)->find_tensor("blk.0.ffn_down.weight")->type, q) << dtype_name(q);
  }
}

TEST(MakeModel, FallbackFollowsLlamaCppsQuantizer) {
  // Rows of 640 (Gemma 3's n_embd) are not whole K-quant blocks of 256.
  EXPECT_EQ(storage_type(DType::Q4_K, {640, 1024}), DType::Q5_0);
  EXPECT_EQ(storage_type(DType::Q5_K, {640, 1024}), DType::Q5_1);
  EXPECT_EQ(storage_type(DType::Q6_K, {640, 1024}), DType::Q8_0);
  EXPECT_EQ(storage_type(DType::Q4_K, {2048, 640}), DType::Q4_K);
  EXPECT_EQ(storage_type(DType::Q3_K, {640, 8}),
            quant::can_quantize(DType::IQ4_NL) ? DType::IQ4_NL : DType::F16);
  // Rows that are not whole 32-blocks either: f16.
  EXPECT_EQ(storage_type(DType::Q4_K, {48, 8}), DType::F16);
  EXPECT_EQ(storage_type(DType::Q4_0, {48, 8}), DType::F16);
  EXPECT_EQ(storage_type(DType::Q8_0, {100, 8}), DType::F16);
  // Plain types never fall back; 1-D tensors are f32.
  EXPECT_EQ(storage_type(DType::BF16, {7, 3}), DType::BF16);
  EXPECT_EQ(storage_type(DType::Q4_0, {4096}), DType::F32);
  EXPECT_EQ(storage_type(DType::F16, {64}), DType::F32);

  // In a file: tiny-qwen3's rows of 256 and 512 take q4_k, attn_output's rows of 384 fall back
  // (as gemma-3-270m's rows of 640 do in the real Q4_K_M file).
  auto f = make("tiny-qwen3", DType::Q4_K, 1, "fallback.gguf");
  ASSERT_TRUE(f.ok()) << f.message();
  EXPECT_EQ((*f)->find_tensor("blk.0.attn_q.weight")->type, DType::Q4_K);       // row 256
  EXPECT_EQ((*f)->find_tensor("blk.0.attn_output.weight")->type, DType::Q5_0);  // row 384
  EXPECT_EQ((*f)->find_tensor("blk.0.ffn_down.weight")->type, DType::Q4_K);     // row 512
  EXPECT_EQ((*f)->find_tensor("blk.0.attn_norm.weight")->type, DType::F32);
}

TEST(MakeModel, SameSeedSameBytesWhateverTheThreads) {
  const ModelPreset* p = find_preset("tiny-qwen3");
  auto bytes = [&](uint64_t seed, unsigned threads) {
    MakeModelOptions o;
    o.quant = DType::Q4_K;
    o.seed = seed;
    o.threads = threads;
    auto w = make_model(*p, o);
    EXPECT_TRUE(w.ok()) << w.message();
    std::vector<uint8_t> b;
    EXPECT_TRUE(w->to_bytes(&b).ok());
    return b;
  };
  auto a = bytes(42, 1);
  EXPECT_EQ(a, bytes(42, 1));
  EXPECT_EQ(a, bytes(42, 5));
  auto other = bytes(43, 1);
  ASSERT_EQ(a.size(), other.size());
  EXPECT_NE(a, other);
}

TEST(MakeModel, TensorsDifferFromEachOther) {
  auto f = make("tiny-llama", DType::F32, 1, "distinct.gguf");
  ASSERT_TRUE(f.ok()) << f.message();
  const GgufFile& g = **f;
  auto q = g.span(*g.find_tensor("blk.0.attn_q.weight"));
  auto q1 = g.span(*g.find_tensor("blk.1.attn_q.weight"));
  auto o = g.span(*g.find_tensor("blk.0.attn_output.weight"));
  EXPECT_FALSE(std::equal(q.begin(), q.end(), q1.begin()));
  EXPECT_FALSE(std::equal(q.begin(), q.end(), o.begin()));
  const float* row = reinterpret_cast<const float*>(q.data());
  EXPECT_NE(row[0], row[128]);  // rows differ too
}

// ---- Tokenizers --------------------------------------------------------------------------------

TEST(GeneratedVocab, Gpt2IsByteLevelBpe) {
  Metadata md = generated_vocab(VocabKind::kGpt2Bpe);
  EXPECT_EQ(*md.get_string("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(*md.get_string("tokenizer.ggml.pre"), "default");
  const auto& tokens = **md.get_string_array("tokenizer.ggml.tokens");
  auto types = *md.get_int_array("tokenizer.ggml.token_type");
  ASSERT_EQ(types.size(), tokens.size());
  std::map<std::string, size_t> id;
  for (size_t i = 0; i < tokens.size(); ++i) {
    EXPECT_TRUE(id.emplace(tokens[i], i).second) << "duplicate token " << tokens[i];
  }
  // The 256 bytes come first, spelled in GPT-2's byte-to-unicode table.
  EXPECT_EQ(tokens['A'], "A");
  EXPECT_EQ(tokens[' '], "\xc4\xa0");   // Ġ U+0120
  EXPECT_EQ(tokens['\n'], "\xc4\x8a");  // Ċ U+010A
  EXPECT_EQ(tokens[0], "\xc4\x80");     // Ā U+0100
  EXPECT_EQ(tokens[0xad], "\xc5\x83");  // the soft hyphen is not printable: U+0143
  EXPECT_EQ(tokens[255], "\xc3\xbf");   // ÿ
  for (size_t i = 0; i < 256; ++i) EXPECT_EQ(types[i], 1) << i;
  // Every merge joins two tokens into a third.
  const auto& merges = **md.get_string_array("tokenizer.ggml.merges");
  EXPECT_GE(merges.size(), 30u);
  for (const std::string& m : merges) {
    size_t sp = m.find(' ');
    ASSERT_NE(sp, std::string::npos) << m;
    std::string l = m.substr(0, sp), r = m.substr(sp + 1);
    EXPECT_TRUE(id.count(l)) << m;
    EXPECT_TRUE(id.count(r)) << m;
    EXPECT_TRUE(id.count(l + r)) << m;
  }
  EXPECT_TRUE(id.count("\xc4\xa0the"));
  uint64_t bos = *md.get_uint("tokenizer.ggml.bos_token_id");
  uint64_t eos = *md.get_uint("tokenizer.ggml.eos_token_id");
  EXPECT_EQ(tokens[bos], "<|bos|>");
  EXPECT_EQ(tokens[eos], "<|eos|>");
  EXPECT_EQ(types[bos], 3);
  EXPECT_EQ(types[eos], 3);
  EXPECT_TRUE(id.count("<|im_start|>"));
  EXPECT_EQ(tokens[*md.get_uint("tokenizer.ggml.eot_token_id")], "<|im_end|>");
}

TEST(GeneratedVocab, SentencePieceIsGemmaShaped) {
  Metadata md = generated_vocab(VocabKind::kSentencePiece);
  EXPECT_EQ(*md.get_string("tokenizer.ggml.model"), "llama");
  const auto& tokens = **md.get_string_array("tokenizer.ggml.tokens");
  auto types = *md.get_int_array("tokenizer.ggml.token_type");
  auto scores = *md.get_float_array("tokenizer.ggml.scores");
  ASSERT_EQ(types.size(), tokens.size());
  ASSERT_EQ(scores.size(), tokens.size());
  EXPECT_EQ(tokens[0], "<pad>");
  EXPECT_EQ(tokens[1], "<eos>");
  EXPECT_EQ(tokens[2], "<bos>");
  EXPECT_EQ(tokens[3], "<unk>");
  EXPECT_EQ(*md.get_uint("tokenizer.ggml.padding_token_id"), 0u);
  EXPECT_EQ(*md.get_uint("tokenizer.ggml.eos_token_id"), 1u);
  EXPECT_EQ(*md.get_uint("tokenizer.ggml.bos_token_id"), 2u);
  EXPECT_EQ(*md.get_uint("tokenizer.ggml.unknown_token_id"), 3u);
  EXPECT_EQ(types[3], 2);
  std::map<std::string, size_t> id;
  for (size_t i = 0; i < tokens.size(); ++i) EXPECT_TRUE(id.emplace(tokens[i], i).second);
  char hex[8];
  for (int b = 0; b < 256; ++b) {
    std::snprintf(hex, sizeof hex, "<0x%02X>", b);
    ASSERT_TRUE(id.count(hex)) << hex;
    EXPECT_EQ(types[id[hex]], 6) << hex;
    if (b) {
      EXPECT_EQ(id[hex], id["<0x00>"] + size_t(b));
    }
  }
  EXPECT_TRUE(id.count("\xe2\x96\x81the"));
  EXPECT_TRUE(id.count("<start_of_turn>"));
  EXPECT_GT(scores[id["\xe2\x96\x81t"]], scores[id["\xe2\x96\x81the"]]);  // ranked
  EXPECT_FALSE(*md.get_bool("tokenizer.ggml.add_space_prefix"));
  EXPECT_TRUE(*md.get_bool("tokenizer.ggml.add_bos_token"));
}

TEST(GeneratedVocab, PaddedWithUnusedTokens) {
  for (VocabKind k : {VocabKind::kGpt2Bpe, VocabKind::kSentencePiece}) {
    Metadata md = generated_vocab(k, 1000);
    const auto& tokens = **md.get_string_array("tokenizer.ggml.tokens");
    auto types = *md.get_int_array("tokenizer.ggml.token_type");
    ASSERT_EQ(tokens.size(), 1000u);
    EXPECT_EQ(types.back(), 5);
    EXPECT_NE(tokens.back().find("unused"), std::string::npos);
    std::set<std::string> unique(tokens.begin(), tokens.end());
    EXPECT_EQ(unique.size(), tokens.size());
  }
}

// ---- --tokenizer-from and the CLI --------------------------------------------------------------

std::set<std::pair<std::string, std::string>> tokenizer_entries(const Metadata& md) {
  std::set<std::pair<std::string, std::string>> out;
  for (const auto& [k, v] : md.entries()) {
    if (k.rfind("tokenizer.", 0) != 0) continue;
    std::string s = v.describe() + ":" + v.s + std::to_string(v.u) + std::to_string(v.b) +
                    std::to_string(v.array_size());
    for (const std::string& x : v.strings) s += "|" + x;
    for (int64_t x : v.ints) s += "," + std::to_string(x);
    for (double x : v.floats) s += ";" + std::to_string(x);
    out.insert({k, s});
  }
  return out;
}

TEST(MakeModelCli, TokenizerFromCopiesEveryTokenizerKey) {
  std::string dir = test::temp_dir();
  auto r = test::run_kiln("make-model --preset tiny-gemma3 --quant f16 --seed 1 -o " + dir +
                          "/src.gguf");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = test::run_kiln("make-model --preset tiny-llama --quant q8_0 --seed 2 --tokenizer-from " +
                     dir + "/src.gguf -o " + dir + "/copied.gguf");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto src = GgufFile::open(dir + "/src.gguf");
  auto dst = GgufFile::open(dir + "/copied.gguf");
  ASSERT_TRUE(src.ok() && dst.ok());
  EXPECT_EQ(tokenizer_entries((*src)->metadata()), tokenizer_entries((*dst)->metadata()));
  EXPECT_EQ((*dst)->architecture(), "llama");
  uint64_t vocab = (*(*src)->metadata().get_string_array("tokenizer.ggml.tokens"))->size();
  EXPECT_EQ(*(*dst)->metadata().get_uint("llama.vocab_size"), vocab);
  EXPECT_EQ((*dst)->find_tensor("token_embd.weight")->dims, (std::vector<uint64_t>{128, vocab}));
  EXPECT_EQ((*dst)->find_tensor("output.weight")->dims, (std::vector<uint64_t>{128, vocab}));
}

TEST(MakeModelCli, TokenizerFromTheRealSmolLM2) {
  KILN_REQUIRE_MODEL(path, "smollm2");
  std::string out = test::temp_dir() + "/qwen2-smol-tok.gguf";
  auto r = test::run_kiln("make-model --preset tiny-qwen2 --quant q4_0 --tokenizer-from " + path +
                          " -o " + out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto real = GgufFile::open(path);
  auto f = GgufFile::open(out);
  ASSERT_TRUE(real.ok() && f.ok());
  EXPECT_EQ(tokenizer_entries((*real)->metadata()), tokenizer_entries((*f)->metadata()));
  EXPECT_EQ((*f)->find_tensor("token_embd.weight")->dims, (std::vector<uint64_t>{128, 49152}));
  EXPECT_EQ((*(*f)->metadata().get_string_array("tokenizer.ggml.merges"))->size(), 48900u);
}

TEST(MakeModelCli, ErrorsAndHelp) {
  std::string out = test::temp_dir() + "/x.gguf";
  auto r = test::run_kiln("make-model --preset no-such --quant f32 -o " + out);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("unknown preset 'no-such'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("tiny-gemma3"), std::string::npos) << r.err;
  r = test::run_kiln("make-model --preset tiny-llama --quant q9_9 -o " + out);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("unsupported --quant 'q9_9'; one of: f32, f16, bf16, q4_0"),
            std::string::npos)
      << r.err;
  r = test::run_kiln("make-model --preset tiny-llama --quant q8_1 -o " + out);  // not a weight type
  EXPECT_EQ(r.exit_code, 1);
  r = test::run_kiln("make-model --preset tiny-llama");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("-o"), std::string::npos) << r.err;
  r = test::run_kiln("make-model --preset tiny-llama --tokenizer-from " + out + ".missing -o " +
                     out);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("cannot open"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(out));

  r = test::run_kiln("make-model --list");
  EXPECT_EQ(r.exit_code, 0);
  for (const ModelPreset& p : model_presets())
    EXPECT_NE(r.out.find(std::string(p.name)), std::string::npos) << p.name;

  r = test::run_kiln("make-model --preset tiny-qwen2 --quant q8_0 --seed 9 -o " + out);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("wrote " + out + ": tiny-qwen2 (qwen2), q8_0 weights, seed 9, 26 tensors"),
            std::string::npos)
      << r.out;
}

}  // namespace
}  // namespace kiln::gguf
