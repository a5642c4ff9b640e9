// The vocabulary a GGUF file describes: token texts, scores and attributes, the special ids
// and flags, and the end-of-generation set, read the way llama.cpp's llama_vocab::load reads
// them (same defaults, same fix-ups by token text), so that ids and decoding agree with it.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "frontends/gguf/gguf_value.h"
#include "frontends/gguf/tokenizer_pretok.h"
#include "ir/status.h"

namespace kiln::gguf {

// Token attribute bits, as llama.cpp's llama_token_attr.
enum TokenAttr : uint32_t {
  kAttrUndefined = 0,
  kAttrUnknown = 1u << 0,
  kAttrUnused = 1u << 1,
  kAttrNormal = 1u << 2,
  kAttrControl = 1u << 3,
  kAttrUserDefined = 1u << 4,
  kAttrByte = 1u << 5,
  kAttrNormalized = 1u << 6,
  kAttrLstrip = 1u << 7,
  kAttrRstrip = 1u << 8,
  kAttrSingleWord = 1u << 9,
};

constexpr int32_t kNoToken = -1;

// Open-addressing map from a byte string to a non-negative id, over strings the caller keeps
// alive. A slot is 8 bytes (32 bits of the hash and the id) so that a 262k-token vocabulary's
// table stays small enough for the caches; the key is found through the id.
class StringIdMap {
 public:
  void reserve(size_t n);
  // Adds s -> id unless s is present; returns the id now stored for s.
  int32_t insert(std::string_view s, int32_t id);
  int32_t find(std::string_view s) const;  // kNoToken when absent
  // Adds keys[i] -> i to an empty map; returns the first i whose key was already present, or -1.
  int32_t insert_all(std::span<const std::string_view> keys);
  size_t size() const { return size_; }

 private:
  struct Slot {
    uint32_t tag = 0;
    int32_t id = kNoToken;
  };
  void grow();
  int32_t insert_hashed(std::string_view s, int32_t id, uint64_t h);
  std::vector<Slot> slots_;
  std::vector<std::string_view> keys_;  // by id
  size_t size_ = 0;
};

uint64_t hash_bytes(std::string_view s);

enum class VocabType { kSpm, kBpe };

// Not copyable or movable: `ids` holds views into `texts`, which a move of a short string
// (small-string optimisation) would leave dangling. load_vocab returns it on the heap.
struct Vocab {
  Vocab() = default;
  Vocab(const Vocab&) = delete;
  Vocab& operator=(const Vocab&) = delete;

  VocabType type = VocabType::kSpm;
  std::string model;     // tokenizer.ggml.model
  std::string pre_name;  // tokenizer.ggml.pre ("" when absent)
  PreTokenizer pre;      // BPE only
  std::string general_name;

  // Token texts live back to back in `texts`; token i is texts[offsets[i], offsets[i + 1]).
  std::string texts;
  std::vector<uint32_t> offsets;
  std::vector<float> scores;
  std::vector<uint32_t> attrs;
  StringIdMap ids;  // text -> id

  int32_t bos = kNoToken, eos = kNoToken, eot = kNoToken, eom = kNoToken, unk = kNoToken,
          sep = kNoToken, pad = kNoToken, mask = kNoToken;
  int32_t fim_pre = kNoToken, fim_suf = kNoToken, fim_mid = kNoToken, fim_pad = kNoToken,
          fim_rep = kNoToken, fim_sep = kNoToken;
  bool add_bos = false, add_eos = false, add_space_prefix = false;
  bool clean_spaces = false;  // llama_detokenize's clean-up of " ." " 's" etc. (BPE default)
  bool ignore_merges = false;

  std::vector<int32_t> eog;      // sorted
  std::vector<int32_t> special;  // control, user-defined and unknown tokens, longest first

  size_t size() const { return attrs.size(); }
  bool valid(int32_t id) const { return id >= 0 && size_t(id) < attrs.size(); }
  std::string_view text(int32_t id) const {
    return std::string_view(texts).substr(offsets[id], offsets[id + 1] - offsets[id]);
  }
  int32_t find(std::string_view s) const { return ids.find(s); }
  bool is_eog(int32_t id) const;
};

// Reads the vocabulary from GGUF metadata. Errors name the key that is missing or malformed.
Result<std::unique_ptr<Vocab>> load_vocab(const Metadata& md);

}  // namespace kiln::gguf
