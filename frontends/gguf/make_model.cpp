#include "frontends/gguf/make_model.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <thread>

#include "frontends/gguf/quant.h"

namespace kiln::gguf {
namespace {

// ---- Random numbers -------------------------------------------------------------------------

uint64_t mix64(uint64_t z) {  // splitmix64's finalizer
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t hash_name(std::string_view s) {  // FNV-1a
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

// splitmix64: one 64-bit draw per weight; integer-only, so every platform gives the same bytes.
struct Rng {
  uint64_t state;
  uint64_t next() { return mix64(state += 0x9e3779b97f4a7c15ull); }
  // Approximately standard normal: the sum of four 16-bit uniforms (Irwin-Hall), centred and
  // scaled to unit variance. Bounded by +-3.46, which suits weights (no wild outliers).
  float normal() {
    uint64_t r = next();
    uint32_t s = uint32_t(r & 0xffff) + uint32_t((r >> 16) & 0xffff) +
                 uint32_t((r >> 32) & 0xffff) + uint32_t(r >> 48);
    return (float(s) + 2.0f - 131072.0f) * (1.7320508f / 65536.0f);
  }
  float uniform() { return float(next() >> 40) * (1.0f / 16777216.0f); }  // [0, 1)
};

// ---- The tensors of a model ------------------------------------------------------------------

enum class Init { kMatrix, kNorm, kBias };

struct Planned {
  std::string name;
  std::vector<uint64_t> dims;
  Init init;
};

std::vector<Planned> plan(const ModelPreset& p, const ArchTraits& a, uint64_t n_vocab) {
  uint64_t e = p.n_embd, q = uint64_t(p.n_head) * p.head_dim,
           kv = uint64_t(p.n_head_kv) * p.head_dim, ff = p.n_ff;
  std::vector<Planned> t;
  t.push_back({"token_embd.weight", {e, n_vocab}, Init::kMatrix});
  for (uint32_t l = 0; l < p.n_layer; ++l) {
    std::string b = "blk." + std::to_string(l) + ".";
    t.push_back({b + "attn_norm.weight", {e}, Init::kNorm});
    t.push_back({b + "attn_q.weight", {e, q}, Init::kMatrix});
    if (a.qkv_bias) t.push_back({b + "attn_q.bias", {q}, Init::kBias});
    t.push_back({b + "attn_k.weight", {e, kv}, Init::kMatrix});
    if (a.qkv_bias) t.push_back({b + "attn_k.bias", {kv}, Init::kBias});
    t.push_back({b + "attn_v.weight", {e, kv}, Init::kMatrix});
    if (a.qkv_bias) t.push_back({b + "attn_v.bias", {kv}, Init::kBias});
    if (a.qk_norm) {
      t.push_back({b + "attn_q_norm.weight", {p.head_dim}, Init::kNorm});
      t.push_back({b + "attn_k_norm.weight", {p.head_dim}, Init::kNorm});
    }
    t.push_back({b + "attn_output.weight", {q, e}, Init::kMatrix});
    if (a.post_norms) t.push_back({b + "post_attention_norm.weight", {e}, Init::kNorm});
    t.push_back({b + "ffn_norm.weight", {e}, Init::kNorm});
    t.push_back({b + "ffn_gate.weight", {e, ff}, Init::kMatrix});
    t.push_back({b + "ffn_up.weight", {e, ff}, Init::kMatrix});
    t.push_back({b + "ffn_down.weight", {ff, e}, Init::kMatrix});
    if (a.post_norms) t.push_back({b + "post_ffw_norm.weight", {e}, Init::kNorm});
  }
  t.push_back({"output_norm.weight", {e}, Init::kNorm});
  if (!p.tied_embeddings) t.push_back({"output.weight", {e, n_vocab}, Init::kMatrix});
  return t;
}

// One row of a tensor's f32 values. The stream depends on (seed, tensor name, row) only.
void generate_row(const Planned& t, uint64_t seed, uint64_t row, float* out) {
  uint64_t n = t.dims[0];
  Rng rng{mix64(seed ^ mix64(hash_name(t.name) + mix64(row + 0x632be59bd9b4e019ull)))};
  switch (t.init) {
    case Init::kMatrix: {
      float sigma = (0.75f + 0.5f * rng.uniform()) / std::sqrt(float(n));
      for (uint64_t i = 0; i < n; ++i) out[i] = sigma * rng.normal();
      break;
    }
    case Init::kNorm:
      for (uint64_t i = 0; i < n; ++i) out[i] = 1.0f + 0.05f * rng.normal();
      break;
    case Init::kBias:
      for (uint64_t i = 0; i < n; ++i) out[i] = 0.05f * rng.normal();
      break;
  }
}

// Generates and converts rows [first, first + n) of a tensor into `out`, split over threads by
// row ranges (each row's values do not depend on which thread makes them).
Status fill_rows(const Planned& t, DType type, uint64_t seed, unsigned threads, uint64_t first,
                 uint64_t n, std::span<uint8_t> out) {
  uint64_t row_len = t.dims[0];
  uint64_t rb = *row_bytes(type, row_len);
  auto work = [&](uint64_t begin, uint64_t end) -> Status {
    std::vector<float> buf(static_cast<size_t>(row_len));
    for (uint64_t r = begin; r < end; ++r) {
      generate_row(t, seed, first + r, buf.data());
      KILN_RETURN_IF_ERROR(
          quant::quantize_row(type, buf.data(), out.data() + r * rb, size_t(row_len)));
    }
    return Status::Ok();
  };
  // Small chunks are not worth a thread.
  uint64_t per_thread_min = std::max<uint64_t>(1, (64u << 10) / std::max<uint64_t>(row_len, 1));
  unsigned nt = unsigned(std::min<uint64_t>(threads, (n + per_thread_min - 1) / per_thread_min));
  if (nt <= 1) return work(0, n);
  std::vector<Status> status(nt);
  std::vector<std::thread> pool;
  for (unsigned i = 0; i < nt; ++i) {
    uint64_t b = n * i / nt, e = n * (i + 1) / nt;
    pool.emplace_back([&, i, b, e] { status[i] = work(b, e); });
  }
  for (std::thread& th : pool) th.join();
  for (Status& s : status) KILN_RETURN_IF_ERROR(s);
  return Status::Ok();
}

// ---- Tokenizers --------------------------------------------------------------------------------

enum TokenType : int64_t { kNormal = 1, kUnknown = 2, kControl = 3, kUnused = 5, kByte = 6 };

void append_utf8(std::string& s, uint32_t cp) {
  if (cp < 0x80) {
    s += char(cp);
  } else if (cp < 0x800) {
    s += char(0xc0 | (cp >> 6));
    s += char(0x80 | (cp & 0x3f));
  } else {
    s += char(0xe0 | (cp >> 12));
    s += char(0x80 | ((cp >> 6) & 0x3f));
    s += char(0x80 | (cp & 0x3f));
  }
}

// GPT-2's byte-to-unicode table: printable bytes stand for themselves, the others for U+0100 on.
std::string gpt2_byte_token(uint32_t b) {
  bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  uint32_t cp = b;
  if (!printable) {
    uint32_t k = 0;  // rank of b among the non-printable bytes
    for (uint32_t x = 0; x < b; ++x)
      if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) ++k;
    cp = 256 + k;
  }
  std::string s;
  append_utf8(s, cp);
  return s;
}

// Merges in rank order, spelled with a space standing for the word boundary marker (Ġ or ▁). Each
// merge's parts exist before it, so every merged token is reachable.
const char* const kMerges[] = {" t",  " a",  "h e",   "i n", "r e", "o n",  " t he", "e r",
                               " s",  "a t", " w",    " o",  "e n", " c",   "i t",   "i s",
                               "a n", "o r", "e s",   " b",  " d",  "e d",  " f",    "in g",
                               " p",  "o u", " a n",  "a l", "a r", " t o", " m",    " o f",
                               " in", " h",  " an d", "l l", " l"};

std::string with_marker(std::string_view s, std::string_view marker) {
  std::string out;
  for (char c : s) {
    if (c == '^')
      out += marker;
    else
      out += c;
  }
  return out;
}

// Splits a merge like " t he" into its parts "^t" and "he" (^ marks the word boundary).
std::pair<std::string, std::string> merge_parts(std::string_view m) {
  std::string s(m);
  bool lead = !s.empty() && s[0] == ' ';
  if (lead) s = s.substr(1);
  size_t sp = s.find(' ');
  std::string left = sp == std::string::npos ? std::string() : s.substr(0, sp);
  std::string right = sp == std::string::npos ? s : s.substr(sp + 1);
  return {(lead ? "^" : "") + left, right};
}

const char kChatMl[] =
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|im_start|>assistant\\n' }}{% endif %}";

const char kGemmaTemplate[] =
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'assistant' %}{% set "
    "role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + "
    "role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}{% if "
    "add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}";

}  // namespace

Metadata generated_vocab(VocabKind kind, uint32_t pad_to) {
  std::vector<std::string> tokens;
  std::vector<int64_t> types;
  std::vector<float> scores;
  Metadata md;
  auto add = [&](std::string text, TokenType type, float score) {
    tokens.push_back(std::move(text));
    types.push_back(type);
    scores.push_back(score);
    return int64_t(tokens.size() - 1);
  };
  if (kind == VocabKind::kGpt2Bpe) {
    // "^" in a merge is a word-initial space, which GPT-2 spells as the byte token of 0x20: Ġ.
    const std::string space = gpt2_byte_token(' ');
    for (uint32_t b = 0; b < 256; ++b) add(gpt2_byte_token(b), kNormal, 0.0f);
    std::vector<std::string> merges;
    for (const char* m : kMerges) {
      auto [l, r] = merge_parts(m);
      l = with_marker(l, space);
      r = with_marker(r, space);
      merges.push_back(l + " " + r);
      add(l + r, kNormal, 0.0f);
    }
    int64_t bos = add("<|bos|>", kControl, 0.0f);
    int64_t eos = add("<|eos|>", kControl, 0.0f);
    add("<|im_start|>", kControl, 0.0f);
    int64_t im_end = add("<|im_end|>", kControl, 0.0f);
    for (uint32_t i = 0; tokens.size() < pad_to; ++i)
      add("<|unused_" + std::to_string(i) + "|>", kUnused, 0.0f);
    md.set("tokenizer.ggml.model", Value::of_string("gpt2"));
    md.set("tokenizer.ggml.pre", Value::of_string("default"));
    md.set("tokenizer.ggml.tokens", Value::of_strings(std::move(tokens)));
    md.set("tokenizer.ggml.token_type", Value::of_ints(Type::I32, std::move(types)));
    md.set("tokenizer.ggml.merges", Value::of_strings(std::move(merges)));
    md.set("tokenizer.ggml.bos_token_id", Value::of_u32(uint32_t(bos)));
    md.set("tokenizer.ggml.eos_token_id", Value::of_u32(uint32_t(eos)));
    md.set("tokenizer.ggml.eot_token_id", Value::of_u32(uint32_t(im_end)));
    md.set("tokenizer.ggml.padding_token_id", Value::of_u32(uint32_t(eos)));
    md.set("tokenizer.ggml.add_bos_token", Value::of_bool(true));
    md.set("tokenizer.ggml.add_eos_token", Value::of_bool(false));
    md.set("tokenizer.chat_template", Value::of_string(kChatMl));
    return md;
  }
  // SentencePiece, laid out like Gemma's vocab. Scores rank the pieces: merges of frequent pairs
  // score higher than rarer ones, and single letters lowest, as in a trained model.
  int64_t pad = add("<pad>", kControl, 0.0f);
  int64_t eos = add("<eos>", kControl, 0.0f);
  int64_t bos = add("<bos>", kControl, 0.0f);
  int64_t unk = add("<unk>", kUnknown, 0.0f);
  add("<start_of_turn>", kControl, 0.0f);
  add("<end_of_turn>", kControl, 0.0f);
  char hex[8];
  for (uint32_t b = 0; b < 256; ++b) {
    std::snprintf(hex, sizeof hex, "<0x%02X>", b);
    add(hex, kByte, 0.0f);
  }
  const std::string marker = "\xe2\x96\x81";  // ▁ U+2581
  add(marker, kNormal, -1.0f);
  float score = -2.0f;
  for (const char* m : kMerges) {
    auto [l, r] = merge_parts(m);
    add(with_marker(l, marker) + with_marker(r, marker), kNormal, score);
    score -= 1.0f;
  }
  for (char c = 'a'; c <= 'z'; ++c) add(std::string(1, c), kNormal, -100.0f - float(c - 'a'));
  for (uint32_t i = 0; tokens.size() < pad_to; ++i)
    add("<unused" + std::to_string(i) + ">", kUnused, 0.0f);
  md.set("tokenizer.ggml.model", Value::of_string("llama"));
  md.set("tokenizer.ggml.pre", Value::of_string("default"));
  md.set("tokenizer.ggml.tokens", Value::of_strings(std::move(tokens)));
  md.set("tokenizer.ggml.scores", Value::of_floats(std::move(scores)));
  md.set("tokenizer.ggml.token_type", Value::of_ints(Type::I32, std::move(types)));
  md.set("tokenizer.ggml.bos_token_id", Value::of_u32(uint32_t(bos)));
  md.set("tokenizer.ggml.eos_token_id", Value::of_u32(uint32_t(eos)));
  md.set("tokenizer.ggml.unknown_token_id", Value::of_u32(uint32_t(unk)));
  md.set("tokenizer.ggml.padding_token_id", Value::of_u32(uint32_t(pad)));
  md.set("tokenizer.ggml.add_bos_token", Value::of_bool(true));
  md.set("tokenizer.ggml.add_eos_token", Value::of_bool(false));
  md.set("tokenizer.ggml.add_space_prefix", Value::of_bool(false));
  md.set("tokenizer.chat_template", Value::of_string(kGemmaTemplate));
  return md;
}

std::vector<DType> make_model_types() {
  const DType wanted[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q4_0,   DType::Q4_1,
                          DType::Q5_0, DType::Q5_1, DType::Q8_0, DType::Q2_K,   DType::Q3_K,
                          DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::IQ4_NL, DType::IQ4_XS};
  std::vector<DType> out;
  for (DType t : wanted)
    if (quant::can_quantize(t)) out.push_back(t);
  return out;
}

DType storage_type(DType requested, const std::vector<uint64_t>& dims) {
  if (dims.size() < 2) return DType::F32;
  auto fits = [&](DType t) {
    return dims[0] % dtype_info(t).block_elems == 0 && quant::can_quantize(t);
  };
  if (fits(requested)) return requested;
  DType sub = DType::F16;
  switch (requested) {
    case DType::Q4_K:
      sub = DType::Q5_0;
      break;
    case DType::Q5_K:
      sub = DType::Q5_1;
      break;
    case DType::Q6_K:
      sub = DType::Q8_0;
      break;
    case DType::Q2_K:
    case DType::Q3_K:
    case DType::IQ4_XS:
      sub = DType::IQ4_NL;
      break;
    default:
      break;
  }
  return fits(sub) ? sub : DType::F16;
}

uint32_t file_type_of(DType t) {
  switch (t) {
    case DType::F32:
      return 0;
    case DType::F16:
      return 1;
    case DType::Q4_0:
      return 2;
    case DType::Q4_1:
      return 3;
    case DType::Q8_0:
      return 7;
    case DType::Q5_0:
      return 8;
    case DType::Q5_1:
      return 9;
    case DType::Q2_K:
      return 10;
    case DType::Q3_K:
      return 11;  // Q3_K_S: one type throughout
    case DType::Q4_K:
      return 14;  // Q4_K_S
    case DType::Q5_K:
      return 16;  // Q5_K_S
    case DType::Q6_K:
      return 18;
    case DType::IQ4_NL:
      return 25;
    case DType::IQ4_XS:
      return 30;
    case DType::BF16:
      return 32;
    default:
      return 0;
  }
}

Result<GgufWriter> make_model(const ModelPreset& preset, const MakeModelOptions& options) {
  const ArchTraits* traits = arch_traits(preset.arch);
  if (!traits) return make_error("make-model: no traits for architecture ", preset.arch);
  auto types = make_model_types();
  if (std::find(types.begin(), types.end(), options.quant) == types.end())
    return make_error("make-model: cannot write ", dtype_name(options.quant), " weights");

  Metadata vocab;
  if (options.tokenizer_from) {
    for (const auto& [k, v] : options.tokenizer_from->entries())
      if (k.rfind("tokenizer.", 0) == 0) vocab.set(k, v);
    auto tokens = vocab.get_string_array("tokenizer.ggml.tokens");
    if (!tokens.ok()) return tokens.error().wrap("make-model: --tokenizer-from");
    if ((*tokens)->empty()) return make_error("make-model: --tokenizer-from: the vocab is empty");
  } else {
    vocab = generated_vocab(traits->vocab, preset.n_vocab);
  }
  uint64_t n_vocab = (*vocab.get_string_array("tokenizer.ggml.tokens"))->size();

  GgufWriter w;
  Metadata& md = w.metadata();
  std::string a(preset.arch);
  auto u32 = [](uint64_t v) { return Value::of_u32(uint32_t(v)); };
  md.set("general.architecture", Value::of_string(a));
  md.set("general.type", Value::of_string("model"));
  md.set("general.name", Value::of_string("kiln " + std::string(preset.name) + " (random, seed " +
                                          std::to_string(options.seed) + ")"));
  md.set("general.file_type", u32(file_type_of(options.quant)));
  md.set("general.quantization_version", u32(2));
  md.set(a + ".context_length", u32(preset.context_length));
  md.set(a + ".embedding_length", u32(preset.n_embd));
  md.set(a + ".block_count", u32(preset.n_layer));
  md.set(a + ".feed_forward_length", u32(preset.n_ff));
  md.set(a + ".attention.head_count", u32(preset.n_head));
  md.set(a + ".attention.head_count_kv", u32(preset.n_head_kv));
  if (traits->head_dim_keys) {
    md.set(a + ".attention.key_length", u32(preset.head_dim));
    md.set(a + ".attention.value_length", u32(preset.head_dim));
  }
  md.set(a + ".rope.freq_base", Value::of_f32(preset.rope_freq_base));
  md.set(a + ".attention.layer_norm_rms_epsilon", Value::of_f32(preset.norm_eps));
  if (preset.sliding_window) md.set(a + ".attention.sliding_window", u32(preset.sliding_window));
  if (traits->rope_dim_key) md.set(a + ".rope.dimension_count", u32(preset.head_dim));
  if (traits->vocab_size_key) md.set(a + ".vocab_size", u32(n_vocab));
  for (const auto& [k, v] : vocab.entries()) md.set(k, v);

  unsigned threads = options.threads ? options.threads : std::thread::hardware_concurrency();
  threads = std::max(1u, std::min(threads, 64u));
  for (Planned& t : plan(preset, *traits, n_vocab)) {
    DType type = storage_type(options.quant, t.dims);
    std::string name = t.name;
    std::vector<uint64_t> dims = t.dims;
    GgufWriter::RowFill fill = [t = std::move(t), type, seed = options.seed, threads](
                                   uint64_t first, uint64_t n, std::span<uint8_t> out) {
      return fill_rows(t, type, seed, threads, first, n, out);
    };
    KILN_RETURN_IF_ERROR(
        w.add_tensor_rows(std::move(name), type, std::move(dims), std::move(fill)));
  }
  return w;
}

}  // namespace kiln::gguf
