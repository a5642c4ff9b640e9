// The artifact container on its own: checksums against published vectors, the head's round trip,
// and the parser's answer to every truncation and every flipped byte of a small artifact (an
// error, never a crash or an out-of-bounds read: the test runs under ASan in CI).
#include <gtest/gtest.h>

#include <random>
#include <string_view>

#include "runtime/artifact_format.h"
#include "runtime/artifact_records.h"

namespace kiln::artifact {
namespace {

std::span<const uint8_t> bytes_of(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

TEST(Checksums, PublishedVectors) {
  EXPECT_EQ(crc32c(bytes_of("123456789")), 0xE3069283u);  // RFC 3720 check value
  EXPECT_EQ(crc32c(bytes_of("")), 0u);
  EXPECT_EQ(hex(sha256(bytes_of(""))),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(hex(sha256(bytes_of("abc"))),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(hex(sha256(bytes_of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"))),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Checksums, CrcIsIncrementalAndSeesEveryByte) {
  std::mt19937 rng(7);
  std::vector<uint8_t> b(1000 + rng() % 100);
  for (uint8_t& x : b) x = uint8_t(rng());
  const uint32_t whole = crc32c(b);
  for (size_t cut : {size_t(0), size_t(1), size_t(7), size_t(500), b.size()})
    EXPECT_EQ(crc32c(std::span(b).subspan(cut), crc32c(std::span(b).first(cut))), whole);
  for (size_t i = 0; i < b.size(); i += 37) {
    b[i] ^= 1;
    EXPECT_NE(crc32c(b), whole) << i;
    b[i] ^= 1;
  }
}

// The definition, a bit at a time: what the interleaved streams and the threads must agree with.
uint32_t crc32c_bitwise(std::span<const uint8_t> b) {
  uint32_t c = ~0u;
  for (uint8_t x : b) {
    c ^= x;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
  }
  return ~c;
}

TEST(Checksums, InterleavedStreamsAndThreadsGiveTheDefinition) {
  std::mt19937 rng(11);
  std::vector<uint8_t> b((size_t(21) << 20) + 4099);
  for (uint8_t& x : b) x = uint8_t(rng());
  const std::span<const uint8_t> all(b);
  // Around the three-stream block (3 x 4096 bytes) and the threads' 4 MiB pieces.
  for (size_t n : {size_t(0), size_t(1), size_t(12287), size_t(12288), size_t(12289),
                   size_t(5 * 12288 + 13), (size_t(4) << 20) + 1})
    EXPECT_EQ(crc32c(all.first(n)), crc32c_bitwise(all.first(n))) << n;
  // Ranges of every kind of length (empty, under a piece, whole pieces, more), more than
  // 16 MiB in all so that threads are used.
  std::vector<std::span<const uint8_t>> ranges = {
      all.subspan(3, 0), all.subspan(5, 1000), all.subspan(7, 8u << 20),
      all.subspan(1000, (8u << 20) + 1), all.subspan(2, b.size() - 2)};
  for (int threads : {1, 2, 3}) {
    const std::vector<uint32_t> got = crc32c_ranges(ranges, threads);
    ASSERT_EQ(got.size(), ranges.size());
    for (size_t r = 0; r < ranges.size(); ++r)
      EXPECT_EQ(got[r], crc32c_bitwise(ranges[r])) << "range " << r << ", " << threads;
  }
  const uint32_t before = crc32c_bitwise(ranges[4]);
  b[b.size() / 2] ^= 4;  // a flipped bit in the middle of a piece
  EXPECT_NE(crc32c_ranges(ranges, 2)[4], before);
}

// A small artifact: a header and a few sections of random bytes.
std::vector<uint8_t> small_artifact(uint32_t seed) {
  std::mt19937 rng(seed);
  Header h;
  h.values["ctx"] = "64";
  h.values["target.arch"] = "x86_64";
  h.values["graphs"] = "decode_b1";
  std::vector<std::vector<uint8_t>> payloads;
  std::vector<SectionEntry> sections;
  for (SectionKind k : {SectionKind::kGraphIr, SectionKind::kGraphObject, SectionKind::kWeights}) {
    std::vector<uint8_t> p(50 + rng() % 200);
    for (uint8_t& x : p) x = uint8_t(rng());
    SectionEntry e;
    e.kind = k;
    e.name = k == SectionKind::kWeights ? "" : "decode_b1";
    e.size = p.size();
    e.crc32c = crc32c(p);
    sections.push_back(e);
    payloads.push_back(std::move(p));
  }
  uint64_t pos = head_bytes(h, sections.size());
  for (SectionEntry& e : sections) {
    uint64_t a = section_alignment(e.kind);
    pos = (pos + a - 1) / a * a;
    e.offset = pos;
    pos += e.size;
  }
  std::vector<uint8_t> out = encode_head(h, sections);
  out.resize(pos, 0);
  for (size_t i = 0; i < sections.size(); ++i)
    std::copy(payloads[i].begin(), payloads[i].end(), out.begin() + long(sections[i].offset));
  return out;
}

TEST(Format, RoundTrip) {
  auto b = small_artifact(1);
  auto v = parse(b, "small");
  ASSERT_TRUE(v.ok()) << v.message();
  EXPECT_EQ(v->header.get("ctx"), "64");
  EXPECT_EQ(*v->header.get_int("ctx"), 64);
  EXPECT_FALSE(v->header.get_int("graphs").ok());
  ASSERT_EQ(v->sections.size(), 3u);
  EXPECT_EQ(v->sections[2].offset % kWeightsAlignment, 0u);
  EXPECT_NE(v->find(SectionKind::kGraphObject, "decode_b1"), nullptr);
  EXPECT_EQ(v->find(SectionKind::kGraphObject, "prefill_t8_b1"), nullptr);
}

TEST(Format, EveryTruncationIsAnError) {
  auto b = small_artifact(2);
  for (size_t n = 0; n < b.size(); ++n) {
    auto v = parse(std::span(b).first(n), "cut");
    ASSERT_FALSE(v.ok()) << n;
  }
}

TEST(Format, EveryFlippedByteIsAnError) {
  auto b = small_artifact(3);
  auto v = parse(b, "base");
  ASSERT_TRUE(v.ok());
  // The head (padding included) and every section are covered by a checksum; the padding
  // between sections is not.
  std::vector<bool> covered(b.size(), false);
  const uint64_t head_end = head_bytes(v->header, v->sections.size());
  for (size_t i = 0; i < head_end; ++i) covered[i] = true;
  for (const SectionEntry& s : v->sections)
    for (uint64_t i = s.offset; i < s.offset + s.size; ++i) covered[i] = true;
  int checked = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    b[i] ^= 0x41;
    auto r = parse(b, "flip");
    if (covered[i]) {
      EXPECT_FALSE(r.ok()) << "byte " << i;
      ++checked;
    }
    b[i] ^= 0x41;
  }
  EXPECT_GT(checked, 400);
}

TEST(Format, ResealKeepsEditsAndChecksumsCatchThemOtherwise) {
  auto b = small_artifact(4);
  std::string text(b.begin(), b.begin() + 200);
  size_t p = text.find("ctx=64");
  ASSERT_NE(p, std::string::npos);
  b[p + 4] = '5';  // ctx=54
  EXPECT_FALSE(parse(b, "edited").ok());
  ASSERT_TRUE(reseal_header(b).ok());
  auto v = parse(b, "resealed");
  ASSERT_TRUE(v.ok()) << v.message();
  EXPECT_EQ(v->header.get("ctx"), "54");
}

TEST(Records, SpecAndKernelsRoundTripAndRejectJunk) {
  lower::GraphSpec s;
  s.tokens = 128;
  s.ctx = 512;
  s.kv_type = DType::Q8_0;
  auto d = decode_spec(encode_spec(s));
  ASSERT_TRUE(d.ok()) << d.message();
  EXPECT_EQ(d->name(), s.name());
  EXPECT_EQ(d->kv_type, DType::Q8_0);
  EXPECT_EQ(d->ctx, 512);
  for (const char* bad :
       {"", "batch=1\n", "batch=x\ntokens=1\nctx=1\nslots=0\nall_logits=0\nkv_type=f16",
        "batch=1\ntokens=1\nctx=1\nslots=0\nall_logits=2\nkv_type=f16",
        "batch=1\ntokens=1\nctx=1\nslots=0\nall_logits=0\nkv_type=zz"})
    EXPECT_FALSE(decode_spec(bad).ok()) << bad;

  cpu::KernelInfo k;
  k.name = "r0";
  k.symbol = "kiln_r0";
  k.scratch_bytes = 128;
  k.shared_bytes = 64;
  k.num_args = 5;
  k.phases = 2;
  k.uses_microkernels = true;
  k.packed_operands = {1, 3};
  auto ks = decode_kernels(encode_kernels({k, k}));
  ASSERT_TRUE(ks.ok()) << ks.message();
  ASSERT_EQ(ks->size(), 2u);
  EXPECT_EQ((*ks)[1].packed_operands, k.packed_operands);
  EXPECT_EQ((*ks)[1].shared_bytes, 64u);
  EXPECT_TRUE((*ks)[1].uses_microkernels);
  for (const char* bad : {"r0\tkiln_r0\t128\t64\t5\t2\t1", "r0\tkiln_r0\t128\t256\t5\t2\t1\t-",
                          "r0\tkiln_r0\t128\t64\t5\t0\t1\t-", "r0\tkiln_r0\t128\t64\t5\t1\t1\t5",
                          "\tkiln_r0\t128\t64\t5\t1\t1\t-"})
    EXPECT_FALSE(decode_kernels(bad).ok()) << bad;
}

// The constants index: random blobs round-trip at 64-byte aligned offsets; every truncation and
// every damaged offset, size or key is an error, never a read outside the section.
TEST(Records, ConstantsRoundTripAndRejectJunk) {
  std::mt19937 rng(7);
  std::vector<std::vector<uint8_t>> blobs;
  std::vector<StoredConstant> in;
  for (int i = 0; i < 5; ++i) {
    blobs.emplace_back(size_t(1 + rng() % 300));
    for (uint8_t& b : blobs.back()) b = uint8_t(rng());
  }
  for (int i = 0; i < 5; ++i)
    in.push_back({"weight(w" + std::to_string(i) + ":q4_0[32, 32])@mk-packed", blobs[size_t(i)]});
  auto section = encode_constants(in);
  ASSERT_TRUE(section.ok()) << section.message();
  // 64-byte aligned storage, as the page-aligned section is in a mapping.
  std::vector<uint64_t> storage((section->size() + 7) / 8);
  auto* base = reinterpret_cast<uint8_t*>(storage.data());
  std::copy(section->begin(), section->end(), base);
  const std::span<const uint8_t> bytes(base, section->size());
  auto out = decode_constants(bytes);
  ASSERT_TRUE(out.ok()) << out.message();
  ASSERT_EQ(out->size(), in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    EXPECT_EQ((*out)[i].key, in[i].key);
    EXPECT_TRUE(std::equal(in[i].bytes.begin(), in[i].bytes.end(), (*out)[i].bytes.begin(),
                           (*out)[i].bytes.end()));
    EXPECT_EQ(((*out)[i].bytes.data() - base) % 64, 0);
  }
  // Truncated anywhere inside the index or the blobs (the padding after the last blob may go).
  const size_t end = size_t(out->back().bytes.data() + out->back().bytes.size() - base);
  for (size_t n = 0; n < end; n += 7) {
    auto r = decode_constants(bytes.first(n));
    EXPECT_FALSE(r.ok()) << "truncated to " << n;
  }
  EXPECT_TRUE(decode_constants(bytes.first(end)).ok());
  // Every digit of the first entry's offset and size bumped: misaligned, overlapping or outside.
  const size_t first = std::string_view(reinterpret_cast<const char*>(base), 64).find('\n') + 1;
  for (size_t d : {size_t(19), size_t(18), size_t(40), size_t(39), size_t(30)}) {
    std::vector<uint8_t> bad(bytes.begin(), bytes.end());
    bad[first + d] = bad[first + d] == '9' ? '0' : uint8_t(bad[first + d] + 1);
    std::vector<uint64_t> st((bad.size() + 7) / 8);
    std::copy(bad.begin(), bad.end(), reinterpret_cast<uint8_t*>(st.data()));
    auto r = decode_constants(
        std::span<const uint8_t>(reinterpret_cast<uint8_t*>(st.data()), bad.size()));
    if (r.ok()) {
      // A size made smaller stays inside the section: legal for the index, caught by the
      // ConstantStore's size check at bind.
      EXPECT_TRUE(d >= 21) << d;
      EXPECT_NE((*r)[0].bytes.size(), in[0].bytes.size());
    }
  }
  // A duplicate key and a key with a line break.
  in.push_back(in[0]);
  EXPECT_FALSE(decode_constants(*encode_constants(in)).ok());
  in.back().key = "a\nb";
  EXPECT_FALSE(encode_constants(in).ok());
}

}  // namespace
}  // namespace kiln::artifact
