#include "frontends/gguf/tokenizer.h"

#include <limits>

#include "frontends/gguf/tokenizer_bpe.h"
#include "frontends/gguf/tokenizer_special.h"
#include "frontends/gguf/tokenizer_spm.h"
#include "frontends/gguf/tokenizer_vocab.h"

namespace kiln::gguf {
namespace {

// Buffers reused by every encode() on a thread: the merge queues index arrays by rank, which
// are worth allocating once rather than per call.
struct EncodeScratch {
  BpeModel::Scratch bpe;
  SpmModel::Scratch spm;
  std::string escaped;
  std::vector<Fragment> frags;
};

EncodeScratch& scratch() {
  thread_local EncodeScratch s;
  return s;
}

}  // namespace

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;

Result<std::unique_ptr<Tokenizer>> Tokenizer::from_gguf(const Metadata& md) {
  std::unique_ptr<Tokenizer> t(new Tokenizer);
  KILN_ASSIGN_OR_RETURN(t->vocab_, load_vocab(md));
  const Vocab& vocab = *t->vocab_;
  if (vocab.type == VocabType::kBpe) {
    KILN_ASSIGN_OR_RETURN(t->bpe_, BpeModel::build(vocab, md));
  } else {
    t->spm_ = std::make_unique<SpmModel>(vocab);
  }
  t->special_ = std::make_unique<SpecialMatcher>(vocab);
  t->build_pieces();
  if (t->spm_) {
    t->newline_ = t->spm_->byte_token('\n');
  } else {
    auto ids = t->encode("\n", false, false);
    t->newline_ = ids.ok() && !ids->empty() ? (*ids)[0] : vocab.pad;
  }
  return t;
}

Result<std::vector<int32_t>> Tokenizer::encode(std::string_view text, bool add_special,
                                               bool parse_special) const {
  if (text.size() > std::numeric_limits<uint32_t>::max() / 4)
    return make_error("tokenizer: input of ", text.size(), " bytes is too long");
  const Vocab& v = *vocab_;
  EncodeScratch& es = scratch();
  std::vector<Fragment>& frags = es.frags;
  special_->partition(text, parse_special, frags);

  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  if (add_special && v.add_bos) out.push_back(v.bos);
  if (spm_) {
    std::string& escaped = es.escaped;
    bool prev_special = true;  // a leading space goes before the first text, as in llama.cpp
    for (const Fragment& f : frags) {
      if (f.token != kNoToken) {
        out.push_back(f.token);
        prev_special = true;
        continue;
      }
      escaped.clear();
      if (v.add_space_prefix && prev_special) escaped += "\xE2\x96\x81";
      for (char c : text.substr(f.offset, f.length)) {
        if (c == ' ') {
          escaped += "\xE2\x96\x81";
        } else {
          escaped += c;
        }
      }
      KILN_RETURN_IF_ERROR(spm_->encode(escaped, out, es.spm));
      prev_special = false;
    }
  } else {
    for (const Fragment& f : frags) {
      if (f.token != kNoToken) {
        out.push_back(f.token);
      } else {
        bpe_->encode(text.substr(f.offset, f.length), out, es.bpe);
      }
    }
  }
  if (add_special && v.add_eos) out.push_back(v.eos);
  return out;
}

std::string_view Tokenizer::token_text(int32_t id) const {
  return vocab_->valid(id) ? vocab_->text(id) : std::string_view();
}
int32_t Tokenizer::find_token(std::string_view text) const {
  return vocab_->find(text);
}
int32_t Tokenizer::bos() const {
  return vocab_->bos;
}
int32_t Tokenizer::eos() const {
  return vocab_->eos;
}
int32_t Tokenizer::eot() const {
  return vocab_->eot;
}
int32_t Tokenizer::eom() const {
  return vocab_->eom;
}
int32_t Tokenizer::unk() const {
  return vocab_->unk;
}
int32_t Tokenizer::pad() const {
  return vocab_->pad;
}
int32_t Tokenizer::sep() const {
  return vocab_->sep;
}
int32_t Tokenizer::newline() const {
  return newline_;
}
bool Tokenizer::add_bos() const {
  return vocab_->add_bos;
}
bool Tokenizer::add_eos() const {
  return vocab_->add_eos;
}
bool Tokenizer::add_space_prefix() const {
  return vocab_->add_space_prefix;
}
bool Tokenizer::is_eog(int32_t id) const {
  return vocab_->is_eog(id);
}
const std::vector<int32_t>& Tokenizer::eog_ids() const {
  return vocab_->eog;
}
bool Tokenizer::is_control(int32_t id) const {
  return attr(id) & kAttrControl;
}
uint32_t Tokenizer::attr(int32_t id) const {
  return vocab_->valid(id) ? vocab_->attrs[id] : 0;
}
size_t Tokenizer::vocab_size() const {
  return vocab_->size();
}
bool Tokenizer::is_spm() const {
  return spm_ != nullptr;
}
const std::string& Tokenizer::model() const {
  return vocab_->model;
}
const std::string& Tokenizer::pre_tokenizer() const {
  return vocab_->pre_name;
}

}  // namespace kiln::gguf
