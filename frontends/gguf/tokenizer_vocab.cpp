#include "frontends/gguf/tokenizer_vocab.h"

#include <algorithm>
#include <cctype>
#include <cstring>

namespace kiln::gguf {

// ---- StringIdMap ----------------------------------------------------------------------------

uint64_t hash_bytes(std::string_view s) {
  // 8 bytes at a time, multiply-xorshift mixing; good enough for token texts and fast.
  uint64_t h = 0x9E3779B97F4A7C15ull ^ (s.size() * 0xC2B2AE3D27D4EB4Full);
  const char* p = s.data();
  size_t n = s.size();
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = (h ^ w) * 0xFF51AFD7ED558CCDull;
    h ^= h >> 32;
    p += 8;
    n -= 8;
  }
  uint64_t w = 0;
  if (n) std::memcpy(&w, p, n);
  h = (h ^ w) * 0xC4CEB9FE1A85EC53ull;
  h ^= h >> 29;
  h *= 0xFF51AFD7ED558CCDull;
  h ^= h >> 32;
  return h;
}

void StringIdMap::reserve(size_t n) {
  size_t cap = 16;
  while (cap < n * 2) cap *= 2;
  keys_.reserve(n);
  if (cap <= slots_.size()) return;
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(cap, Slot{});
  size_ = 0;
  for (const Slot& s : old)
    if (s.id != kNoToken) insert(keys_[s.id], s.id);
}

void StringIdMap::grow() {
  reserve(slots_.empty() ? 8 : slots_.size());
}

int32_t StringIdMap::insert(std::string_view s, int32_t id) {
  if ((size_ + 1) * 2 > slots_.size()) grow();
  return insert_hashed(s, id, hash_bytes(s));
}

int32_t StringIdMap::insert_hashed(std::string_view s, int32_t id, uint64_t h) {
  const uint32_t tag = uint32_t(h >> 32);
  const size_t mask = slots_.size() - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    Slot& slot = slots_[i];
    if (slot.id == kNoToken) {
      slot = Slot{tag, id};
      if (keys_.size() <= size_t(id)) keys_.resize(size_t(id) + 1);
      keys_[id] = s;
      ++size_;
      return id;
    }
    if (slot.tag == tag && keys_[slot.id] == s) return slot.id;
  }
}

int32_t StringIdMap::insert_all(std::span<const std::string_view> keys) {
  reserve(size_ + keys.size());
  // Hashes first, then the inserts with each slot fetched a few keys ahead: the table is
  // megabytes for a large vocabulary and every insert a cache miss otherwise.
  std::vector<uint64_t> hashes(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) hashes[i] = hash_bytes(keys[i]);
  constexpr size_t kAhead = 8;
  const size_t mask = slots_.size() - 1;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (i + kAhead < keys.size()) __builtin_prefetch(&slots_[hashes[i + kAhead] & mask]);
    const int32_t id = insert_hashed(keys[i], int32_t(i), hashes[i]);
    if (id != int32_t(i)) return int32_t(i);
  }
  return -1;
}

int32_t StringIdMap::find(std::string_view s) const {
  if (slots_.empty()) return kNoToken;
  const uint64_t h = hash_bytes(s);
  const uint32_t tag = uint32_t(h >> 32);
  const size_t mask = slots_.size() - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    const Slot& slot = slots_[i];
    if (slot.id == kNoToken) return kNoToken;
    if (slot.tag == tag && keys_[slot.id] == s) return slot.id;
  }
}

// ---- Vocab ----------------------------------------------------------------------------------

bool Vocab::is_eog(int32_t id) const {
  return std::binary_search(eog.begin(), eog.end(), id);
}

namespace {

// llama.cpp's token types (tokenizer.ggml.token_type) and the attribute each becomes.
uint32_t attr_of_type(int64_t type) {
  switch (type) {
    case 1:
      return kAttrNormal;
    case 2:
      return kAttrUnknown;
    case 3:
      return kAttrControl;
    case 4:
      return kAttrUserDefined;
    case 5:
      return kAttrUnused;
    case 6:
      return kAttrByte;
    default:
      return kAttrUndefined;
  }
}

// Reads an optional token id key; an id outside the vocabulary keeps the default, as in
// llama.cpp (which warns).
Status read_id(const Metadata& md, const char* key, size_t n, int32_t* id) {
  if (*id >= 0 && size_t(*id) >= n) *id = kNoToken;
  if (!md.has(key)) return Status::Ok();
  KILN_ASSIGN_OR_RETURN(uint64_t v, md.get_uint(key));
  if (v < n) *id = int32_t(v);
  return Status::Ok();
}

bool contains(std::string_view s, std::string_view part) {
  return s.find(part) != std::string_view::npos;
}

// The fix-ups llama.cpp applies by token text, since GGUF files do not mark these tokens.
void detect_special_by_text(Vocab& v) {
  static const std::vector<std::string_view> kEot = {
      "<|eot_id|>",        "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
      "<|end_of_text|>",   "<EOT>",      "_<EOT>",  "[EOT]",         "<｜end▁of▁sentence｜>",
      "<end_of_utterance>"};
  static const std::vector<std::string_view> kEom = {"<|eom_id|>"};
  static const std::vector<std::string_view> kFimPre = {
      "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>",    "<｜fim▁begin｜>",
      "<PRE>",          "▁<PRE>",       "<|code_prefix|>", "<|prefix|>"};
  static const std::vector<std::string_view> kFimSuf = {
      "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>",    "<｜fim▁hole｜>",
      "<SUF>",          "▁<SUF>",       "<|code_suffix|>", "<|suffix|>"};
  static const std::vector<std::string_view> kFimMid = {
      "<|fim_middle|>", "<fim-middle>", "<fim_middle>",    "<｜fim▁end｜>",
      "<MID>",          "▁<MID>",       "<|code_middle|>", "<|middle|>"};
  static const std::vector<std::string_view> kFimPad = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>",
                                                        "<PAD>", "[PAD]"};
  static const std::vector<std::string_view> kFimRep = {"<|fim_repo|>", "<|repo_name|>",
                                                        "<fim-repo>", "<REPO>", "<reponame>"};
  static const std::vector<std::string_view> kFimSep = {"<|file_sep|>"};
  static const std::vector<std::string_view> kEog = {"<|eot_id|>",
                                                     "<|im_end|>",
                                                     "<|end|>",
                                                     "<|return|>",
                                                     "<|call|>",
                                                     "<|flush|>",
                                                     "<|calls|>",
                                                     "<end_of_turn>",
                                                     "<|endoftext|>",
                                                     "</s>",
                                                     "<|eom_id|>",
                                                     "<EOT>",
                                                     "_<EOT>",
                                                     "[EOT]",
                                                     "[EOS]",
                                                     "<|end_of_text|>",
                                                     "<end_of_utterance>",
                                                     "<eos>",
                                                     "<turn|>",
                                                     "<|tool_response>",
                                                     "<｜end▁of▁sentence｜>",
                                                     "[e~["};

  // llama.cpp walks an unordered_map, so which of several candidates it takes depends on hash
  // order; we take the lowest id (this gives SmolLM2 the <|endoftext|> that llama.cpp reports).
  auto pick = [&](int32_t* slot, const std::vector<std::string_view>& names) {
    if (*slot != kNoToken) return;
    for (std::string_view name : names) {
      int32_t id = v.find(name);
      if (id != kNoToken && (*slot == kNoToken || id < *slot)) *slot = id;
    }
    if (*slot != kNoToken) v.attrs[*slot] |= kAttrControl;
  };
  pick(&v.eot, kEot);
  pick(&v.eom, kEom);
  pick(&v.fim_pre, kFimPre);
  pick(&v.fim_suf, kFimSuf);
  pick(&v.fim_mid, kFimMid);
  pick(&v.fim_pad, kFimPad);
  pick(&v.fim_rep, kFimRep);
  pick(&v.fim_sep, kFimSep);

  // Control tokens named "...unused..." are unused.
  for (int32_t id = 0; id < int32_t(v.size()); ++id)
    if ((v.attrs[id] & kAttrControl) && contains(v.text(id), "unused")) v.attrs[id] |= kAttrUnused;

  std::vector<int32_t> eog;
  for (int32_t id : {v.fim_pad, v.fim_rep, v.fim_sep})
    if (id != kNoToken) eog.push_back(id);
  for (std::string_view name : kEog) {
    int32_t id = v.find(name);
    if (id == kNoToken) continue;
    eog.push_back(id);
    v.attrs[id] |= kAttrControl;
  }
  // gpt-oss: these are always rendered.
  for (std::string_view t : {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"})
    if (int32_t id = v.find(t); id != kNoToken) v.attrs[id] = kAttrUserDefined;
  for (int32_t id : {v.eos, v.eot, v.eom})
    if (id != kNoToken) eog.push_back(id);
  std::sort(eog.begin(), eog.end());
  eog.erase(std::unique(eog.begin(), eog.end()), eog.end());

  auto eog_text = [&](std::string_view t) {
    for (int32_t id : eog)
      if (v.text(id) == t) return id;
    return kNoToken;
  };
  // o200k_harmony / solar-open: <|end|> ends a message, not the generation.
  int32_t end = eog_text("<|end|>");
  bool has_call = eog_text("<|call|>") != kNoToken || eog_text("<|calls|>") != kNoToken;
  if (end != kNoToken && has_call &&
      (eog_text("<|return|>") != kNoToken || eog_text("<|flush|>") != kNoToken)) {
    eog.erase(std::find(eog.begin(), eog.end(), end));
    v.attrs[end] = kAttrUserDefined;
  }
  // gemma4 / paddleocr: </s> is text there.
  int32_t s = eog_text("</s>");
  if (s != kNoToken && eog_text("<|tool_response>") != kNoToken) {
    eog.erase(std::find(eog.begin(), eog.end(), s));
    v.attrs[s] = kAttrNormal;
  }
  v.eog = std::move(eog);
}

void set_strip_attrs(Vocab& v) {
  std::string name = v.general_name;
  for (char& c : name) c = char(std::tolower(static_cast<unsigned char>(c)));
  auto set = [&](std::string_view text, uint32_t bit, bool on) {
    int32_t id = v.find(text);
    if (id == kNoToken) return;
    v.attrs[id] = on ? (v.attrs[id] | bit) : (v.attrs[id] & ~bit);
  };
  if (contains(v.pre_name, "jina-v2-de") || contains(v.pre_name, "jina-v2-es") ||
      contains(v.pre_name, "jina-v2-code")) {
    set("<mask>", kAttrLstrip, true);
  } else if (contains(name, "phi-3") || contains(name, "phi3")) {
    for (int32_t id : v.special) v.attrs[id] |= kAttrRstrip;
    set("</s>", kAttrRstrip, true);
    for (std::string_view t : {"<unk>", "<s>", "<|endoftext|>"}) set(t, kAttrRstrip, false);
  } else if (contains(name, "modern-bert")) {
    set("[MASK]", kAttrLstrip, true);
  }
}

}  // namespace

Result<std::unique_ptr<Vocab>> load_vocab(const Metadata& md) {
  auto owned = std::make_unique<Vocab>();
  Vocab& v = *owned;
  KILN_ASSIGN_OR_RETURN(v.model, md.get_string("tokenizer.ggml.model"));
  KILN_ASSIGN_OR_RETURN(v.pre_name, md.get_string_or("tokenizer.ggml.pre", ""));
  KILN_ASSIGN_OR_RETURN(v.general_name, md.get_string_or("general.name", ""));

  if (v.model == "llama") {
    v.type = VocabType::kSpm;
    v.bos = 1;
    v.eos = 2;
    v.unk = 0;
    v.add_space_prefix = true;
    v.add_bos = true;
  } else if (v.model == "gpt2") {
    v.type = VocabType::kBpe;
    if (!md.has("tokenizer.ggml.merges"))
      return make_error("tokenizer.ggml.merges: missing (needed by the gpt2 tokenizer)");
    KILN_ASSIGN_OR_RETURN(v.pre, pre_tokenizer_for(v.pre_name));
    v.bos = v.pre.no_bos ? kNoToken : 11;  // llama.cpp's odd BPE defaults, out of range -> none
    v.eos = 11;
    v.add_bos = v.pre.add_bos;
    v.clean_spaces = v.pre.clean_spaces;
    v.ignore_merges = v.pre.ignore_merges;
  } else {
    return make_error("tokenizer.ggml.model: tokenizer '", v.model,
                      "' is not supported (supported: gpt2, llama)");
  }
  KILN_ASSIGN_OR_RETURN(v.add_space_prefix,
                        md.get_bool_or("tokenizer.ggml.add_space_prefix", v.add_space_prefix));

  KILN_ASSIGN_OR_RETURN(const std::vector<std::string>* tokens,
                        md.get_string_array("tokenizer.ggml.tokens"));
  const size_t n = tokens->size();
  if (n == 0) return make_error("tokenizer.ggml.tokens: empty vocabulary");
  if (n > size_t(INT32_MAX / 2)) return make_error("tokenizer.ggml.tokens: too many tokens");

  std::vector<float> scores(n, 0.0f);
  if (const Value* sv = md.find("tokenizer.ggml.scores")) {
    if (sv->type != Type::ARRAY || !(is_float_type(sv->elem) || is_int_type(sv->elem)))
      return make_error("tokenizer.ggml.scores: expected an array of f32, found ", sv->describe());
    // llama.cpp reads past a short array; a length that differs at all means the file's arrays
    // do not describe the same vocabulary, so it is refused.
    if (sv->array_size() != n)
      return make_error("tokenizer.ggml.scores: ", sv->array_size(), " scores for ", n, " tokens");
    for (size_t i = 0; i < n; ++i)
      scores[i] = is_float_type(sv->elem) ? float(sv->floats[i]) : float(sv->ints[i]);
  }
  std::vector<uint32_t> attrs(n, kAttrNormal);
  if (md.has("tokenizer.ggml.token_type")) {
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> types,
                          md.get_int_array("tokenizer.ggml.token_type"));
    if (types.size() != n)
      return make_error("tokenizer.ggml.token_type: ", types.size(), " types for ", n, " tokens");
    for (size_t i = 0; i < n; ++i) {
      // 0..6 are llama.cpp's llama_token_type; anything else is a broken file, not a new kind.
      if (types[i] < 0 || types[i] > 6)
        return make_error("tokenizer.ggml.token_type[", i, "]: type ", types[i],
                          " is not a token type (0..6)");
      attrs[i] = attr_of_type(types[i]);
    }
  }

  // Texts back to back; an empty text becomes "[EMPTY_i]" as in llama.cpp.
  v.offsets.reserve(n + 1);
  size_t total = 0;
  for (const std::string& t : *tokens) total += t.empty() ? 16 : t.size();
  v.texts.reserve(total);
  for (size_t i = 0; i < n; ++i) {
    v.offsets.push_back(uint32_t(v.texts.size()));
    const std::string& t = (*tokens)[i];
    v.texts += t.empty() ? "[EMPTY_" + std::to_string(i) + "]" : t;
    if (v.texts.size() > UINT32_MAX) return make_error("tokenizer.ggml.tokens: texts too long");
  }
  v.offsets.push_back(uint32_t(v.texts.size()));
  v.scores = std::move(scores);
  v.attrs = std::move(attrs);
  v.ids.reserve(n);
  {
    std::vector<std::string_view> texts(n);
    for (size_t i = 0; i < n; ++i) texts[i] = v.text(int32_t(i));
    if (const int32_t dup = v.ids.insert_all(texts); dup >= 0)
      return make_error("tokenizer.ggml.tokens: duplicate token '", v.text(dup), "' at ids ",
                        v.ids.find(v.text(dup)), " and ", dup);
  }

  struct Key {
    const char* key;
    int32_t* id;
  };
  const Key keys[] = {
      {"tokenizer.ggml.bos_token_id", &v.bos},
      {"tokenizer.ggml.eos_token_id", &v.eos},
      {"tokenizer.ggml.eot_token_id", &v.eot},
      {"tokenizer.ggml.eom_token_id", &v.eom},
      {"tokenizer.ggml.unknown_token_id", &v.unk},
      {"tokenizer.ggml.seperator_token_id", &v.sep},
      {"tokenizer.ggml.padding_token_id", &v.pad},
      {"tokenizer.ggml.mask_token_id", &v.mask},
      {"tokenizer.ggml.fim_pre_token_id", &v.fim_pre},
      {"tokenizer.ggml.fim_suf_token_id", &v.fim_suf},
      {"tokenizer.ggml.fim_mid_token_id", &v.fim_mid},
      {"tokenizer.ggml.fim_pad_token_id", &v.fim_pad},
      {"tokenizer.ggml.fim_rep_token_id", &v.fim_rep},
      {"tokenizer.ggml.fim_sep_token_id", &v.fim_sep},
      {"tokenizer.ggml.prefix_token_id", &v.fim_pre},
      {"tokenizer.ggml.suffix_token_id", &v.fim_suf},
      {"tokenizer.ggml.middle_token_id", &v.fim_mid},
  };
  for (const Key& k : keys) KILN_RETURN_IF_ERROR(read_id(md, k.key, n, k.id));
  KILN_ASSIGN_OR_RETURN(v.add_bos, md.get_bool_or("tokenizer.ggml.add_bos_token", v.add_bos));
  KILN_ASSIGN_OR_RETURN(v.add_eos, md.get_bool_or("tokenizer.ggml.add_eos_token", v.add_eos));
  if (v.add_bos && v.bos == kNoToken)
    return make_error("tokenizer.ggml.add_bos_token is true, but there is no valid BOS id");
  if (v.add_eos && v.eos == kNoToken)
    return make_error("tokenizer.ggml.add_eos_token is true, but there is no valid EOS id");

  detect_special_by_text(v);

  for (int32_t id = 0; id < int32_t(n); ++id)
    if (v.attrs[id] & (kAttrControl | kAttrUserDefined | kAttrUnknown)) v.special.push_back(id);
  // Longest first; llama.cpp's std::sort leaves ties in no defined order, we keep id order.
  std::sort(v.special.begin(), v.special.end(), [&](int32_t a, int32_t b) {
    const size_t la = v.text(a).size(), lb = v.text(b).size();
    return la != lb ? la > lb : a < b;
  });
  set_strip_attrs(v);
  return owned;
}

}  // namespace kiln::gguf
