// Hostile and corrupt GGUF files: each gives an error naming the field and its byte offset, never
// a crash, a hang or a giant allocation. Every case starts from a valid file made by GgufWriter
// and corrupts one field, found by searching the bytes for the key or tensor name it belongs to.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <random>

#include "frontends/gguf/gguf_file.h"
#include "frontends/gguf/gguf_writer.h"
#include "tests/support/test_support.h"

namespace kiln::gguf {
namespace {

using Bytes = std::vector<uint8_t>;

// A valid file with every kind of field the cases corrupt: scalar, string, array and bool values,
// a duplicate-able pair of keys and of tensor names (same lengths), general.alignment, and two
// tensors (q8_0 and f32) so offsets can overlap. `pad` is the length of a filler string.
Bytes make_file(size_t pad) {
  GgufWriter w;
  Metadata& md = w.metadata();
  md.set("general.architecture", Value::of_string("llama"));
  md.set("general.alignment", Value::of_u32(32));
  md.set("test.u32", Value::of_u32(7));
  md.set("test.str", Value::of_string("hello"));
  md.set("test.strs", Value::of_strings({"a", "bb", "ccc"}));
  md.set("test.f32s", Value::of_floats({1.0f, 2.0f}));
  md.set("test.bool", Value::of_bool(true));
  md.set("test.nested",
         Value::of_arrays({Value::of_ints(Type::I32, {1, 2}), Value::of_strings({})}));
  md.set("test.pad", Value::of_string(std::string(pad, '.')));
  md.set("dup.a", Value::of_u32(1));
  md.set("dup.b", Value::of_u32(2));
  Bytes q8(2 * 34, 0);
  for (size_t i = 0; i < q8.size(); ++i) q8[i] = uint8_t(i * 7 + 1);
  Bytes f32(8 * 4 * 4, 0);
  for (size_t i = 0; i < f32.size(); ++i) f32[i] = uint8_t(i);
  EXPECT_TRUE(w.add_tensor_owned("tensor.aa", DType::Q8_0, {32, 2}, q8).ok());
  EXPECT_TRUE(w.add_tensor_owned("tensor.bb", DType::F32, {8, 4}, f32).ok());
  return w.to_bytes();
}

size_t find(const Bytes& b, std::string_view s);
size_t offset_pos(const Bytes& b, std::string_view name);

// The base file, padded so the tensor infos end half-way through an alignment unit: then a file
// cut just after them has its data section start past its end.
Bytes base_file() {
  for (size_t pad = 0;; ++pad) {
    Bytes b = make_file(pad);
    if ((offset_pos(b, "tensor.bb") + 8) % 32 == 16) return b;
  }
}

// Byte position of the first occurrence of `s` in the file (the text of a key or a tensor name).
size_t find(const Bytes& b, std::string_view s) {
  auto it = std::search(b.begin(), b.end(), s.begin(), s.end());
  EXPECT_NE(it, b.end()) << s;
  return size_t(it - b.begin());
}
// Positions of a key's parts: [u64 len][key][u32 type][value].
size_t key_pos(const Bytes& b, std::string_view key) {
  return find(b, key) - 8;
}
size_t type_pos(const Bytes& b, std::string_view key) {
  return find(b, key) + key.size();
}
size_t value_pos(const Bytes& b, std::string_view key) {
  return type_pos(b, key) + 4;
}
// Positions of a tensor info's parts: [u64 len][name][u32 n_dims][u64 dims...][u32 type][u64 off].
size_t n_dims_pos(const Bytes& b, std::string_view name) {
  return find(b, name) + name.size();
}
size_t dim_pos(const Bytes& b, std::string_view name, int d) {
  return n_dims_pos(b, name) + 4 + 8 * size_t(d);
}
size_t ttype_pos(const Bytes& b, std::string_view name) {
  return dim_pos(b, name, 2);
}
size_t offset_pos(const Bytes& b, std::string_view name) {
  return ttype_pos(b, name) + 4;
}

template <typename T>
void poke(Bytes& b, size_t pos, T v) {
  ASSERT_LE(pos + sizeof v, b.size());
  std::memcpy(b.data() + pos, &v, sizeof v);
}

std::string at(size_t pos) {
  return "at byte " + std::to_string(pos) + ": ";
}

struct Case {
  std::string name;
  // Corrupts the valid file and returns the expected substring of the error.
  std::function<std::string(Bytes&)> corrupt;
};

// A file from its own writer, for cases the base file cannot be patched into.
Bytes file_with(const std::string& key, Value v) {
  GgufWriter w;
  w.metadata().set(key, std::move(v));
  return w.to_bytes();
}

const std::vector<Case>& cases() {
  static const std::vector<Case> k = {
      {"WrongMagic",
       [](Bytes& b) {
         b[0] = 'X';
         return std::string("at byte 0: magic: not a GGUF file");
       }},
      {"Version1",
       [](Bytes& b) {
         poke<uint32_t>(b, 4, 1);
         return std::string("at byte 4: version: GGUF v1 is not supported");
       }},
      {"Version99",
       [](Bytes& b) {
         poke<uint32_t>(b, 4, 99);
         return std::string("at byte 4: version: unsupported GGUF version 99");
       }},
      {"VersionBigEndian",
       [](Bytes& b) {
         poke<uint32_t>(b, 4, 0x03000000);
         return std::string("at byte 4: version: 50331648 looks like a big-endian file");
       }},
      {"TensorCountHuge",
       [](Bytes& b) {
         poke<uint64_t>(b, 8, uint64_t(1) << 60);
         return std::string("at byte 8: tensor count: 1152921504606846976 exceeds");
       }},
      {"MetadataCountHuge",
       [](Bytes& b) {
         poke<uint64_t>(b, 16, uint64_t(1) << 60);
         return std::string("at byte 16: metadata count: 1152921504606846976 exceeds");
       }},
      {"KeyLengthPastEnd",
       [](Bytes& b) {
         poke<uint64_t>(b, 24, uint64_t(1) << 40);
         return at(24) + "metadata key: string length 1099511627776 runs past the end";
       }},
      {"StringLengthPastEnd",
       [](Bytes& b) {
         size_t p = value_pos(b, "test.str");
         poke<uint64_t>(b, p, uint64_t(b.size()));
         return at(p) + "value of test.str: string length " + std::to_string(b.size()) +
                " runs past the end of the file";
       }},
      {"StringInArrayPastEnd",
       [](Bytes& b) {
         size_t p = value_pos(b, "test.strs") + 12;  // first element's length
         poke<uint64_t>(b, p, ~uint64_t(0));
         return at(p) + "value of test.strs: string length 18446744073709551615 runs past";
       }},
      {"ArrayCountHuge",
       [](Bytes& b) {
         size_t p = value_pos(b, "test.strs") + 4;
         poke<uint64_t>(b, p, uint64_t(1) << 61);
         return at(p) + "value of test.strs: array count 2305843009213693952 exceeds";
       }},
      {"ArrayCountMax",
       [](Bytes& b) {
         size_t p = value_pos(b, "test.f32s") + 4;
         poke<uint64_t>(b, p, ~uint64_t(0));
         return at(p) + "value of test.f32s: array count 18446744073709551615 exceeds";
       }},
      {"UnknownValueType",
       [](Bytes& b) {
         size_t p = type_pos(b, "test.u32");
         poke<uint32_t>(b, p, 13);
         return at(p) + "value of test.u32: unknown value type 13";
       }},
      {"UnknownArrayElementType",
       [](Bytes& b) {
         size_t p = value_pos(b, "test.f32s");
         poke<uint32_t>(b, p, 0x80000000u);
         return at(p) + "value of test.f32s: unknown value type 2147483648";
       }},
      {"BoolNotZeroOrOne",
       [](Bytes& b) {
         size_t p = value_pos(b, "test.bool");
         b[p] = 2;
         return at(p) + "value of test.bool: bool value 2";
       }},
      {"NestedArraysTooDeep",
       [](Bytes& b) {
         Value v = Value::of_ints(Type::U8, {1});
         for (int i = 0; i < 5; ++i) v = Value::of_arrays({v});
         b = file_with("test.deep", v);
         // The outer array is depth 0: the fifth level (4 arrays in) is refused where it starts.
         size_t p = value_pos(b, "test.deep") + 4 * 12;
         return at(p) + "value of test.deep: arrays nested more than 4 deep";
       }},
      {"TooManyNestedArrays",
       [](Bytes& b) {
         b = file_with("test.many",
                       Value::of_arrays(std::vector<Value>(70000, Value::of_ints(Type::U8, {}))));
         size_t p = value_pos(b, "test.many") + 4;
         return at(p) + "value of test.many: more than 65536 arrays inside arrays";
       }},
      {"DuplicateKey",
       [](Bytes& b) {
         size_t p = key_pos(b, "dup.b");
         b[p + 8 + 4] = 'a';
         return at(p) + "metadata key 'dup.a': duplicate key";
       }},
      {"AlignmentZero",
       [](Bytes& b) {
         size_t p = value_pos(b, "general.alignment");
         poke<uint32_t>(b, p, 0);
         return at(p) + "general.alignment: 0 is not a power of two";
       }},
      {"AlignmentThree",
       [](Bytes& b) {
         size_t p = value_pos(b, "general.alignment");
         poke<uint32_t>(b, p, 3);
         return at(p) + "general.alignment: 3 is not a power of two";
       }},
      {"AlignmentHuge",
       [](Bytes& b) {
         size_t p = value_pos(b, "general.alignment");
         poke<uint32_t>(b, p, 1u << 21);
         return at(p) + "general.alignment: 2097152 is not a power of two up to 1 MiB";
       }},
      {"AlignmentWrongType",
       [](Bytes& b) {
         poke<uint32_t>(b, type_pos(b, "general.alignment"), uint32_t(Type::F32));
         return at(value_pos(b, "general.alignment")) +
                "general.alignment: expected u32, found f32";
       }},
      {"TensorNameLengthPastEnd",
       [](Bytes& b) {
         size_t p = find(b, "tensor.bb") - 8;
         poke<uint64_t>(b, p, uint64_t(1) << 50);
         return at(p) + "tensor name: string length 1125899906842624 runs past the end";
       }},
      {"DuplicateTensorName",
       [](Bytes& b) {
         size_t p = find(b, "tensor.bb");
         b[p + 7] = 'a';
         b[p + 8] = 'a';
         return at(p - 8) + "tensor name 'tensor.aa': duplicate name";
       }},
      {"NDimsZero",
       [](Bytes& b) {
         size_t p = n_dims_pos(b, "tensor.bb");
         poke<uint32_t>(b, p, 0);
         return at(p) + "tensor 'tensor.bb' n_dims: 0 not in 1..4";
       }},
      {"NDimsFive",
       [](Bytes& b) {
         size_t p = n_dims_pos(b, "tensor.bb");
         poke<uint32_t>(b, p, 5);
         return at(p) + "tensor 'tensor.bb' n_dims: 5 not in 1..4";
       }},
      {"ZeroDimension",
       [](Bytes& b) {
         size_t p = dim_pos(b, "tensor.bb", 1);
         poke<uint64_t>(b, p, 0);
         return at(p) + "tensor 'tensor.bb' dims: dimension 1 is 0";
       }},
      {"OverflowingDimensions",  // 2^32 * 2^32 = 2^64
       [](Bytes& b) {
         poke<uint64_t>(b, dim_pos(b, "tensor.bb", 0), uint64_t(1) << 32);
         size_t p = dim_pos(b, "tensor.bb", 1);
         poke<uint64_t>(b, p, uint64_t(1) << 32);
         return at(p) + "tensor 'tensor.bb' dims: element count overflows";
       }},
      {"DimensionsPast2To63",  // 2^31 * 2^33 = 2^64 / 2: fits u64 but not the element limit
       [](Bytes& b) {
         poke<uint64_t>(b, dim_pos(b, "tensor.bb", 0), uint64_t(1) << 31);
         size_t p = dim_pos(b, "tensor.bb", 1);
         poke<uint64_t>(b, p, uint64_t(1) << 32);
         return at(p) + "tensor 'tensor.bb' dims: element count overflows";
       }},
      {"UnknownTensorType",
       [](Bytes& b) {
         size_t p = ttype_pos(b, "tensor.bb");
         poke<uint32_t>(b, p, 99);
         return at(p) + "tensor 'tensor.bb' type: unknown tensor type 99";
       }},
      {"RemovedTensorType",  // Q4_2 (4) was removed from ggml
       [](Bytes& b) {
         size_t p = ttype_pos(b, "tensor.bb");
         poke<uint32_t>(b, p, 4);
         return at(p) + "tensor 'tensor.bb' type: unknown tensor type 4";
       }},
      {"RowNotWholeBlocks",
       [](Bytes& b) {
         poke<uint64_t>(b, dim_pos(b, "tensor.aa", 0), 33);
         return at(ttype_pos(b, "tensor.aa")) +
                "tensor 'tensor.aa' type: row length 33 is not a multiple of the q8_0 block "
                "size 32";
       }},
      {"MisalignedOffset",
       [](Bytes& b) {
         size_t p = offset_pos(b, "tensor.bb");
         poke<uint64_t>(b, p, 97);
         return at(p) + "tensor 'tensor.bb' offset: 97 is not a multiple of the alignment 32";
       }},
      {"OffsetPastEnd",
       [](Bytes& b) {
         size_t p = offset_pos(b, "tensor.bb");
         poke<uint64_t>(b, p, uint64_t(1) << 40);
         return at(p) + "tensor 'tensor.bb' offset: data [1099511627776, +128) runs past the end";
       }},
      {"OffsetMaxAligned",
       [](Bytes& b) {
         size_t p = offset_pos(b, "tensor.bb");
         poke<uint64_t>(b, p, ~uint64_t(31));
         return at(p) + "tensor 'tensor.bb' offset: data [18446744073709551584, +128) runs past";
       }},
      {"DataRunsPastEnd",  // the last tensor's bytes are cut short
       [](Bytes& b) {
         size_t p = offset_pos(b, "tensor.bb");
         b.resize(b.size() - 1);
         return at(p) + "tensor 'tensor.bb' offset: data [96, +128) runs past the end";
       }},
      {"OverlappingTensors",
       [](Bytes& b) {
         size_t p = offset_pos(b, "tensor.bb");
         poke<uint64_t>(b, p, 64);
         return at(p) +
                "tensor 'tensor.bb' offset: data [64, +128) overlaps tensor 'tensor.aa' "
                "[0, +68)";
       }},
      {"SameOffset",
       [](Bytes& b) {
         size_t p = offset_pos(b, "tensor.bb");
         poke<uint64_t>(b, p, 0);
         return at(p) + "tensor 'tensor.bb' offset: data [0, +128) overlaps tensor 'tensor.aa'";
       }},
      {"DataSectionPastEnd",
       [](Bytes& b) {
         size_t end_of_infos = offset_pos(b, "tensor.bb") + 8;
         b.resize(end_of_infos + 1);
         return at(end_of_infos) + "data section: starts at byte";
       }},
  };
  return k;
}

class BadInput : public testing::TestWithParam<size_t> {};

TEST_P(BadInput, ErrorNamesFieldAndByteOffset) {
  const Case& c = cases()[GetParam()];
  Bytes b = base_file();
  ASSERT_TRUE(GgufFile::parse(b).ok()) << "the base file must be valid";
  std::string expected = c.corrupt(b);
  auto f = GgufFile::parse(b, "bad.gguf");
  ASSERT_FALSE(f.ok()) << c.name << " parsed; expected: " << expected;
  EXPECT_NE(f.message().find(expected), std::string::npos)
      << c.name << "\n  got:      " << f.message() << "\n  expected: " << expected;
  EXPECT_EQ(f.message().rfind("bad.gguf: at byte ", 0), 0u) << f.message();
}

INSTANTIATE_TEST_SUITE_P(Gguf, BadInput, testing::Range<size_t>(0, cases().size()),
                         [](const testing::TestParamInfo<size_t>& i) {
                           return cases()[i.param].name;
                         });

TEST(BadInput, EveryTruncationFailsWithAByteOffset) {
  Bytes full = base_file();
  auto ok = GgufFile::parse(full);
  ASSERT_TRUE(ok.ok()) << ok.message();
  uint64_t needed = 0;  // the file is valid from here on
  for (const TensorInfo& t : (*ok)->tensors())
    needed = std::max(needed, (*ok)->data_offset() + t.offset + t.bytes);
  ASSERT_EQ(needed, full.size()) << "the last tensor should end the file";
  for (size_t len = 0; len < full.size(); ++len) {
    Bytes prefix(full.begin(), full.begin() + long(len));
    auto f = GgufFile::parse(prefix);
    ASSERT_FALSE(f.ok()) << "prefix of " << len << " bytes parsed";
    EXPECT_NE(f.message().find(": at byte "), std::string::npos) << len << ": " << f.message();
  }
}

TEST(BadInput, RandomByteFlipsNeverCrash) {
  Bytes full = base_file();
  std::mt19937 rng(1234);
  int rejected = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    Bytes b = full;
    int flips = 1 + int(rng() % 4);
    for (int k = 0; k < flips; ++k) b[rng() % b.size()] ^= uint8_t(1 + rng() % 255);
    auto f = GgufFile::parse(b);
    if (!f.ok()) {
      ++rejected;
      EXPECT_NE(f.message().find("at byte "), std::string::npos) << f.message();
      continue;
    }
    for (const TensorInfo& t : (*f)->tensors()) {  // what parses must be in bounds
      ASSERT_LE((*f)->data_offset() + t.offset + t.bytes, b.size());
    }
  }
  EXPECT_GT(rejected, 0);
}

TEST(BadInput, EmptyAndTinyFiles) {
  for (size_t n : {0, 1, 3, 4, 7, 8}) {
    Bytes b(n, 0);
    if (n) std::memcpy(b.data(), "GGUF", std::min<size_t>(n, 4));
    auto f = GgufFile::parse(b);
    ASSERT_FALSE(f.ok());
    EXPECT_NE(f.message().find("at byte "), std::string::npos) << f.message();
  }
}

TEST(BadInput, InspectExitsOneWithTheMessageOnStderr) {
  Bytes b = base_file();
  poke<uint32_t>(b, 4, 99);
  std::string path = test::temp_dir() + "/corrupt.gguf";
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(b.data()), long(b.size()));
  auto r = test::run_kiln("inspect " + path);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("kiln inspect: error: " + path +
                       ": at byte 4: version: unsupported GGUF "
                       "version 99"),
            std::string::npos)
      << r.err;

  r = test::run_kiln("inspect --json " + path);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("at byte 4: version"), std::string::npos) << r.err;

  r = test::run_kiln("inspect " + test::temp_dir() + "/no-such-file.gguf");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("cannot open"), std::string::npos) << r.err;

  r = test::run_kiln("inspect " + test::temp_dir());  // a directory
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("not a regular file"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace kiln::gguf
