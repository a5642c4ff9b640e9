// Text <-> token ids from a GGUF file's tokenizer.* metadata, with llama.cpp's results: the same
// ids for the same text and flags, the same pieces and detokenized text.
//
//   auto tok = Tokenizer::from_gguf(file->metadata());
//   auto ids = (*tok)->encode("Hello", /*add_special=*/true, /*parse_special=*/false);
//   std::string text = (*tok)->decode(*ids);
//
// Two models: GPT-2 byte-level BPE ("gpt2", with the pre-tokenizer tokenizer.ggml.pre names)
// and SentencePiece-style BPE ("llama", scores and <0xNN> byte fallback). A Tokenizer is
// immutable after from_gguf and safe to use from several threads.
//
// llama.cpp's own behaviour is kept where it decides ids, even where it surprises:
//  - invalid UTF-8 is read as U+FFFD per bad byte, while overlong and surrogate forms decode
//    to their value (C0 80 is U+0000); a BPE symbol that is not a token falls back to one-byte
//    tokens and silently loses bytes that have none (SmolLM2 has no token for 21 bytes,
//    among them F1 and F2);
//  - user-defined tokens (Gemma 3's runs of spaces, newlines and tabs, its HTML tags) are
//    matched even without parse_special; special texts are matched longest first over the
//    whole text, not leftmost first;
//  - tokens are promoted by their text: <|im_end|>, <end_of_turn>, </s>, ... become control
//    and end-of-generation, FIM tokens such as <reponame> too;
//  - "smollm" cuts every digit alone (" 12" is " " "1" "2"); "gpt2"/"llama3"/"default" decode
//    with llama.cpp's space clean-up (" ," -> ",", " 's" -> "'s").
// One difference: a 4-byte form above U+10FFFF makes llama.cpp abort; here its bytes are
// invalid like any other.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "frontends/gguf/gguf_value.h"
#include "ir/status.h"

namespace kiln::gguf {

struct Vocab;
class BpeModel;
class SpmModel;
class SpecialMatcher;

class Tokenizer {
 public:
  static Result<std::unique_ptr<Tokenizer>> from_gguf(const Metadata& md);
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Token ids of text. add_special adds BOS/EOS where the metadata asks for them
  // (tokenizer.ggml.add_bos_token / add_eos_token); parse_special turns control-token text such
  // as "<|im_start|>" into its token (user-defined tokens are matched either way). Any bytes
  // are accepted; invalid UTF-8 is read as U+FFFD per bad byte, as llama.cpp does.
  Result<std::vector<int32_t>> encode(std::string_view text, bool add_special,
                                      bool parse_special) const;

  // Text of ids, as llama_detokenize(remove_special=false): control and unknown tokens are
  // rendered only with render_special; ids outside the vocabulary are skipped.
  std::string decode(std::span<const int32_t> ids, bool render_special = false) const;
  // The bytes one token stands for (llama_token_to_piece); "" for an id outside the vocabulary.
  std::string piece(int32_t id, bool render_special = false) const;
  // The token's text as stored in the vocabulary ("Ġthe", "▁the", "<0x0A>").
  std::string_view token_text(int32_t id) const;
  // The id of a token text, or -1.
  int32_t find_token(std::string_view text) const;

  int32_t bos() const;  // -1 when the model has none
  int32_t eos() const;
  int32_t eot() const;
  int32_t eom() const;
  int32_t unk() const;
  int32_t pad() const;
  int32_t sep() const;
  int32_t newline() const;  // the token of "\n" (llama.cpp's linefeed id)
  bool add_bos() const;
  bool add_eos() const;
  bool add_space_prefix() const;
  // End of generation: eos, eot, eom and tokens such as <|im_end|>, <end_of_turn>, <|eot_id|>.
  bool is_eog(int32_t id) const;
  const std::vector<int32_t>& eog_ids() const;
  bool is_control(int32_t id) const;
  uint32_t attr(int32_t id) const;  // TokenAttr bits (tokenizer_vocab.h), 0 when out of range
  size_t vocab_size() const;
  bool is_spm() const;
  const std::string& model() const;          // tokenizer.ggml.model
  const std::string& pre_tokenizer() const;  // tokenizer.ggml.pre

 private:
  Tokenizer();
  std::unique_ptr<Vocab> vocab_;
  std::unique_ptr<BpeModel> bpe_;
  std::unique_ptr<SpmModel> spm_;
  std::unique_ptr<SpecialMatcher> special_;
  // Pieces of every token (special=true), back to back.
  std::string pieces_;
  std::vector<uint32_t> piece_offsets_;
  int32_t newline_ = -1;

  std::string_view cached_piece(int32_t id) const;
  void build_pieces();
};

// Turns ids into text as they are generated, holding back the bytes of a UTF-8 sequence that
// the next token will complete, so that every string it returns is valid UTF-8 wherever the
// pieces are. Concatenated, push() and flush() give decode() of the same ids (for models whose
// detokenizer does no space clean-up, which SmolLM2 and Gemma 3 do not).
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok, bool render_special = false)
      : tok_(tok), render_special_(render_special) {}
  std::string push(int32_t id);
  // Whatever is held back (an incomplete sequence at the very end, as raw bytes).
  std::string flush();

 private:
  const Tokenizer& tok_;
  bool render_special_;
  bool first_ = true;
  std::string pending_;
};

}  // namespace kiln::gguf
