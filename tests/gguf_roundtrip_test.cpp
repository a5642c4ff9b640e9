#include <gtest/gtest.h>

#include <cstring>

#include "frontends/gguf/gguf_file.h"
#include "frontends/gguf/gguf_writer.h"
#include "tests/support/test_support.h"

namespace kiln::gguf {
namespace {

TEST(GgufRoundTrip, MetadataAndTensorsSurviveWriteAndRead) {
  GgufWriter w;
  w.metadata().set("general.architecture", Value::of_string("llama"));
  w.metadata().set("llama.block_count", Value::of_u32(2));
  w.metadata().set("llama.rope.freq_base", Value::of_f32(10000.0f));
  w.metadata().set("tokenizer.ggml.tokens", Value::of_strings({"a", "b", "<0x0A>"}));
  w.metadata().set("x.ints", Value::of_ints(Type::I32, {-1, 2, 3}));
  w.metadata().set("x.flag", Value::of_bool(true));
  std::vector<float> data = test::random_floats(64 * 3, 1);
  std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(data.data()), data.size() * 4);
  ASSERT_TRUE(w.add_tensor("t", DType::F32, {64, 3}, bytes).ok());
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

TEST(GgufMetadata, ErrorsNameTheKey) {
  Metadata md;
  md.set("tokenizer.ggml.tokens", Value::of_u32(7));
  EXPECT_EQ(md.get_uint("llama.block_count").message(), "missing key llama.block_count");
  EXPECT_EQ(md.get_string_array("tokenizer.ggml.tokens").message(),
            "key tokenizer.ggml.tokens: expected array of string, found u32");
}

}  // namespace
}  // namespace kiln::gguf
