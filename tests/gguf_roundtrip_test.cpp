#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "frontends/gguf/gguf_file.h"
#include "frontends/gguf/gguf_writer.h"
#include "frontends/gguf/make_model.h"
#include "tests/support/test_support.h"

namespace kiln::gguf {
namespace {

std::span<const uint8_t> as_bytes(const std::vector<float>& v) {
  return {reinterpret_cast<const uint8_t*>(v.data()), v.size() * sizeof(float)};
}

TEST(GgufRoundTrip, MetadataAndTensorsSurviveWriteAndRead) {
  GgufWriter w;
  w.metadata().set("general.architecture", Value::of_string("llama"));
  w.metadata().set("llama.block_count", Value::of_u32(2));
  w.metadata().set("llama.rope.freq_base", Value::of_f32(10000.0f));
  w.metadata().set("tokenizer.ggml.tokens", Value::of_strings({"a", "b", "<0x0A>"}));
  w.metadata().set("x.ints", Value::of_ints(Type::I32, {-1, 2, 3}));
  w.metadata().set("x.flag", Value::of_bool(true));
  std::vector<float> data = test::random_floats(64 * 3, 1);
  ASSERT_TRUE(w.add_tensor("t", DType::F32, {64, 3}, as_bytes(data)).ok());
  auto file_bytes = w.to_bytes();

  auto f = GgufFile::parse(file_bytes);
  ASSERT_TRUE(f.ok()) << f.message();
  const Metadata& md = (*f)->metadata();
  EXPECT_EQ(*md.get_string("general.architecture"), "llama");
  EXPECT_EQ(*md.get_uint("llama.block_count"), 2u);
  EXPECT_FLOAT_EQ(float(*md.get_float("llama.rope.freq_base")), 10000.0f);
  EXPECT_EQ((**md.get_string_array("tokenizer.ggml.tokens"))[2], "<0x0A>");
  EXPECT_EQ((*md.get_int_array("x.ints"))[0], -1);
  EXPECT_TRUE(*md.get_bool("x.flag"));
  const TensorInfo* t = (*f)->find_tensor("t");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->dims, (std::vector<uint64_t>{64, 3}));
  EXPECT_EQ(t->bytes, 64u * 3 * 4);
  EXPECT_EQ(std::memcmp((*f)->data(*t), data.data(), t->bytes), 0);
}

// One value of every GGUF type, arrays of each, and nested arrays.
Metadata every_value_type() {
  Metadata md;
  Value v;
  v = Value::of_u32(0);
  for (Type t : {Type::U8, Type::U16, Type::U32, Type::U64}) {
    v.type = t;
    v.u = t == Type::U8 ? 0xab : t == Type::U16 ? 0xabcd : t == Type::U32 ? 0xabcdef01u : ~0ull;
    md.set("u." + std::string(type_name(t)), v);
  }
  v = Value::of_i32(0);
  for (Type t : {Type::I8, Type::I16, Type::I32, Type::I64}) {
    v.type = t;
    v.i = t == Type::I8 ? -100 : t == Type::I16 ? -30000 : t == Type::I32 ? -2000000000 : INT64_MIN;
    md.set("i." + std::string(type_name(t)), v);
  }
  md.set("f.f32", Value::of_f32(0.25f));
  md.set("f.f64", Value::of_f64(1e300));
  md.set("b.true", Value::of_bool(true));
  md.set("b.false", Value::of_bool(false));
  md.set("s.empty", Value::of_string(""));
  md.set("s.utf8", Value::of_string("\xe2\x96\x81hello \xc4\xa0world\n"));
  for (Type t :
       {Type::U8, Type::I8, Type::U16, Type::I16, Type::U32, Type::I32, Type::U64, Type::I64})
    md.set("a." + std::string(type_name(t)),
           Value::of_ints(t, {0, 1, is_signed_type(t) ? -1 : 2, 100}));
  md.set("a.f32", Value::of_floats({0.5f, -1.5f}));
  Value f64s = Value::of_floats({});
  f64s.elem = Type::F64;
  f64s.floats = {1e-300, -2.0};
  md.set("a.f64", f64s);
  Value bools = Value::of_ints(Type::U8, {});
  bools.elem = Type::BOOL;
  bools.ints.clear();
  bools.bools = {1, 0, 1};
  md.set("a.bool", bools);
  md.set("a.string", Value::of_strings({"", "x", std::string(300, 'y')}));
  md.set("a.empty", Value::of_strings({}));
  md.set("a.nested", Value::of_arrays({Value::of_ints(Type::I32, {1, 2}), Value::of_strings({"z"}),
                                       Value::of_arrays({Value::of_floats({3.0f})})}));
  return md;
}

void expect_same_value(const Value& a, const Value& b, const std::string& key) {
  ASSERT_EQ(a.type, b.type) << key;
  if (a.type != Type::ARRAY) {
    if (is_signed_type(a.type))
      EXPECT_EQ(a.i, b.i) << key;
    else if (is_int_type(a.type))
      EXPECT_EQ(a.u, b.u) << key;
    else if (is_float_type(a.type))
      EXPECT_EQ(a.f, b.f) << key;
    else if (a.type == Type::BOOL)
      EXPECT_EQ(a.b, b.b) << key;
    else
      EXPECT_EQ(a.s, b.s) << key;
    return;
  }
  ASSERT_EQ(a.elem, b.elem) << key;
  ASSERT_EQ(a.array_size(), b.array_size()) << key;
  EXPECT_EQ(a.ints, b.ints) << key;
  EXPECT_EQ(a.floats, b.floats) << key;
  EXPECT_EQ(a.bools, b.bools) << key;
  EXPECT_EQ(a.strings, b.strings) << key;
  for (size_t i = 0; i < a.arrays.size(); ++i) expect_same_value(a.arrays[i], b.arrays[i], key);
}

TEST(GgufRoundTrip, EveryValueType) {
  GgufWriter w;
  w.metadata() = every_value_type();
  auto bytes = w.to_bytes();
  auto f = GgufFile::parse(bytes);
  ASSERT_TRUE(f.ok()) << f.message();
  const Metadata& md = (*f)->metadata();
  ASSERT_EQ(md.size(), w.metadata().size());
  for (const auto& [k, v] : w.metadata().entries()) {
    ASSERT_NE(md.find(k), nullptr) << k;
    expect_same_value(v, *md.find(k), k);
  }
  EXPECT_EQ(*md.get_uint("u.u64"), ~0ull);
  EXPECT_EQ(*md.get_int("i.i64"), INT64_MIN);
  EXPECT_FALSE(md.get_int("u.u64").ok());  // does not fit
  EXPECT_EQ(md.get_uint("i.i8").message(), "key i.i8: expected a non-negative integer, found -100");
  EXPECT_EQ((*md.get_int_array("a.u64"))[2], 2);
}

TEST(GgufRoundTrip, AlignmentIsRecordedAndHonoured) {
  GgufWriter w;
  w.set_alignment(256);
  std::vector<float> a(40, 1.0f), b(8, 2.0f);
  ASSERT_TRUE(w.add_tensor("a", DType::F32, {40}, as_bytes(a)).ok());
  ASSERT_TRUE(w.add_tensor("b", DType::F32, {8}, as_bytes(b)).ok());
  auto bytes = w.to_bytes();
  auto f = GgufFile::parse(bytes);
  ASSERT_TRUE(f.ok()) << f.message();
  EXPECT_EQ((*f)->alignment(), 256u);
  EXPECT_EQ(*(*f)->metadata().get_uint("general.alignment"), 256u);
  EXPECT_EQ((*f)->data_offset() % 256, 0u);
  EXPECT_EQ((*f)->find_tensor("b")->offset, 256u);

  // A general.alignment set by the caller states the writer's alignment, whatever it said.
  GgufWriter w2;
  w2.metadata().set("general.alignment", Value::of_string("nonsense"));
  ASSERT_TRUE(w2.add_tensor("a", DType::F32, {40}, as_bytes(a)).ok());
  auto bytes2 = w2.to_bytes();
  auto f2 = GgufFile::parse(bytes2);
  ASSERT_TRUE(f2.ok()) << f2.message();
  EXPECT_EQ((*f2)->alignment(), 32u);

  GgufWriter bad;
  bad.set_alignment(48);
  std::vector<uint8_t> out;
  EXPECT_NE(bad.to_bytes(&out).message().find("alignment 48 is not a power of two"),
            std::string::npos);
}

TEST(GgufRoundTrip, Version2IsRead) {
  GgufWriter w;
  w.metadata().set("k", Value::of_u32(5));
  auto bytes = w.to_bytes();
  bytes[4] = 2;
  auto f = GgufFile::parse(bytes);
  ASSERT_TRUE(f.ok()) << f.message();
  EXPECT_EQ((*f)->version(), 2u);
}

TEST(GgufWriter, RowsAreStreamedInOrder) {
  // 3 MiB of f32 rows in chunks: the writer asks for every row exactly once, in order.
  const uint64_t cols = 1024, rows = 3 * 256 + 7;
  uint64_t next = 0;
  GgufWriter w;
  ASSERT_TRUE(w.add_tensor_rows("big", DType::F32, {cols, rows},
                                [&](uint64_t first, uint64_t n, std::span<uint8_t> out) {
                                  EXPECT_EQ(first, next);
                                  EXPECT_EQ(out.size(), n * cols * 4);
                                  for (uint64_t r = 0; r < n; ++r)
                                    for (uint64_t c = 0; c < cols; ++c) {
                                      float v = float(first + r) + float(c) / 2048.0f;
                                      std::memcpy(out.data() + (r * cols + c) * 4, &v, 4);
                                    }
                                  next = first + n;
                                  return Status::Ok();
                                })
                  .ok());
  std::string path = test::temp_dir() + "/rows.gguf";
  ASSERT_TRUE(w.write(path).ok());
  EXPECT_EQ(next, rows);
  auto f = GgufFile::open(path);
  ASSERT_TRUE(f.ok()) << f.message();
  const TensorInfo* t = (*f)->find_tensor("big");
  ASSERT_NE(t, nullptr);
  const float* v = reinterpret_cast<const float*>((*f)->data(*t));
  EXPECT_EQ(v[0], 0.0f);
  EXPECT_EQ(v[cols * 700 + 3], 700.0f + 3.0f / 2048.0f);
  EXPECT_EQ(v[cols * rows - 1], float(rows - 1) + 1023.0f / 2048.0f);
}

TEST(GgufWriter, FailedFillLeavesNoFile) {
  GgufWriter w;
  ASSERT_TRUE(w.add_tensor_rows("t", DType::F32, {4, 4},
                                [](uint64_t, uint64_t, std::span<uint8_t>) -> Status {
                                  return make_error("no more data");
                                })
                  .ok());
  std::string path = test::temp_dir() + "/failed.gguf";
  Status st = w.write(path);
  EXPECT_EQ(st.message(), path + ": tensor t: no more data");
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  EXPECT_TRUE(w.to_bytes().empty());
}

TEST(GgufWriter, RejectsBadTensors) {
  GgufWriter w;
  std::vector<uint8_t> bytes(64);
  EXPECT_FALSE(w.add_tensor("t", DType::F32, {}, bytes).ok());
  EXPECT_FALSE(w.add_tensor("t", DType::F32, {1, 1, 1, 1, 16}, bytes).ok());
  EXPECT_FALSE(w.add_tensor("t", DType::F32, {16, 0}, bytes).ok());
  EXPECT_FALSE(w.add_tensor("t", DType::F32, {15}, bytes).ok());              // size mismatch
  EXPECT_FALSE(w.add_tensor("t", DType::Q8_0, {16}, bytes).ok());             // not whole blocks
  EXPECT_FALSE(w.add_tensor("t", DType::F32, {16, 1ull << 62}, bytes).ok());  // overflows
  ASSERT_TRUE(w.add_tensor("t", DType::F32, {16}, bytes).ok());
  EXPECT_EQ(w.add_tensor("t", DType::F32, {16}, bytes).message(),
            "gguf writer: duplicate tensor t");
  EXPECT_FALSE(w.write(test::temp_dir() + "/no/such/dir/x.gguf").ok());
}

TEST(GgufMetadata, ErrorsNameTheKey) {
  Metadata md;
  md.set("tokenizer.ggml.tokens", Value::of_u32(7));
  EXPECT_EQ(md.get_uint("llama.block_count").message(), "missing key llama.block_count");
  EXPECT_EQ(md.get_string_array("tokenizer.ggml.tokens").message(),
            "key tokenizer.ggml.tokens: expected array of string, found u32");
}

// ---- Fuzz seeds ------------------------------------------------------------------------------
// tests/fuzz/corpus/gguf_reader/ holds small valid files: scripts/make-fuzz-seeds runs
// FuzzSeeds.Write with KILN_WRITE_FUZZ_SEEDS=<dir> to make them; FuzzSeeds.CommittedSeedsParse
// checks that the committed ones are valid and small.

std::vector<std::pair<std::string, std::vector<uint8_t>>> fuzz_seeds() {
  std::vector<std::pair<std::string, std::vector<uint8_t>>> seeds;
  {  // every value type and a tensor of many types
    GgufWriter w;
    w.metadata() = every_value_type();
    std::vector<float> f = test::random_floats(64, 7);
    for (DType t : {DType::F32, DType::F16, DType::BF16, DType::Q4_0, DType::Q8_0, DType::I8,
                    DType::I32, DType::Q4_K, DType::Q6_K}) {
      uint64_t n = dtype_info(t).block_elems == 256 ? 256 : 64;
      std::vector<uint8_t> b(*row_bytes(t, n));
      for (size_t i = 0; i < b.size(); ++i) b[i] = uint8_t(i * 37 + 11);
      EXPECT_TRUE(w.add_tensor_owned("t." + std::string(dtype_name(t)), t, {n}, b).ok());
    }
    seeds.push_back({"all_types", w.to_bytes()});
  }
  {  // alignment 64, 2-D to 4-D tensors
    GgufWriter w;
    w.set_alignment(64);
    w.metadata().set("general.architecture", Value::of_string("llama"));
    std::vector<uint8_t> b(2 * 3 * 4 * 32 * 2, 0x3c);
    EXPECT_TRUE(w.add_tensor_owned("d4", DType::F16, {32, 4, 3, 2}, b).ok());
    EXPECT_TRUE(w.add_tensor_owned("d2", DType::F16, {32, 24}, b).ok());
    seeds.push_back({"aligned_64", w.to_bytes()});
  }
  {  // no tensors, version 2
    GgufWriter w;
    w.metadata().set("general.name", Value::of_string("empty"));
    auto b = w.to_bytes();
    b[4] = 2;
    seeds.push_back({"v2_no_tensors", b});
  }
  // Micro models of each architecture: real keys and tensor names, tiny shapes, and a 16-token
  // vocab of the architecture's tokenizer kind so each seed stays a few KB.
  for (const ModelPreset* p : {find_preset("tiny-llama"), find_preset("tiny-qwen2"),
                               find_preset("tiny-qwen3"), find_preset("tiny-gemma3")}) {
    ModelPreset micro = *p;
    micro.n_layer = 1;
    micro.n_embd = 32;
    micro.n_head = 2;
    micro.n_head_kv = 1;
    micro.head_dim = 16;
    micro.n_ff = 32;
    bool spm = micro.arch == "gemma3";
    Metadata tok;
    std::vector<std::string> tokens = {"<s>", "</s>", "a", "b", "c", "ab", "abc", "\n"};
    tokens.resize(16, "");
    for (size_t i = 8; i < 16; ++i) tokens[i] = "t" + std::to_string(i);
    tok.set("tokenizer.ggml.model", Value::of_string(spm ? "llama" : "gpt2"));
    tok.set("tokenizer.ggml.tokens", Value::of_strings(tokens));
    tok.set("tokenizer.ggml.token_type",
            Value::of_ints(Type::I32, {3, 3, 1, 1, 1, 1, 1, 6, 1, 1, 1, 1, 1, 1, 1, 5}));
    if (spm)
      tok.set("tokenizer.ggml.scores", Value::of_floats(std::vector<float>(16, -1.0f)));
    else
      tok.set("tokenizer.ggml.merges", Value::of_strings({"a b", "ab c"}));
    tok.set("tokenizer.ggml.bos_token_id", Value::of_u32(0));
    tok.set("tokenizer.ggml.eos_token_id", Value::of_u32(1));
    MakeModelOptions o;
    o.quant = micro.arch == "qwen2" ? DType::Q8_0 : DType::Q4_0;
    o.seed = 1;
    o.tokenizer_from = &tok;
    auto w = make_model(micro, o);
    EXPECT_TRUE(w.ok()) << w.message();
    if (!w.ok()) continue;
    std::vector<uint8_t> b;
    EXPECT_TRUE(w->to_bytes(&b).ok());
    seeds.push_back({"micro_" + std::string(micro.arch), b});
  }
  return seeds;
}

TEST(FuzzSeeds, Write) {
  const char* dir = std::getenv("KILN_WRITE_FUZZ_SEEDS");
  if (!dir) GTEST_SKIP() << "set KILN_WRITE_FUZZ_SEEDS=<dir> to write the seeds";
  std::filesystem::create_directories(dir);
  for (const auto& [name, bytes] : fuzz_seeds()) {
    ASSERT_TRUE(GgufFile::parse(bytes).ok()) << name;
    std::ofstream(std::string(dir) + "/" + name, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), long(bytes.size()));
  }
}

TEST(FuzzSeeds, CommittedSeedsParse) {
  std::string dir = std::string(KILN_SOURCE_DIR) + "/tests/fuzz/corpus/gguf_reader";
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    auto bytes = test::read_bytes(e.path().string());
    EXPECT_LE(bytes.size(), 32u << 10) << e.path() << " is too big for a seed";
    auto f = GgufFile::parse(bytes);
    EXPECT_TRUE(f.ok()) << e.path() << ": " << f.message();
    ++n;
  }
  EXPECT_GE(n, 5);
}

}  // namespace
}  // namespace kiln::gguf
