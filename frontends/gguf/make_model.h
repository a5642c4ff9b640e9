// Models with random weights for tests and benchmarks (`kiln make-model`): the real shapes,
// metadata keys and tensor names llama.cpp uses for the preset's architecture, weights at the
// scale of a trained model, and a small valid tokenizer (or one copied from a real model).
//
// Weights. Every matrix is normal(0, sigma) with sigma = 1/sqrt(row length), each row scaled by a
// further factor in [0.75, 1.25] so quantization blocks see different scales: a matmul then keeps
// activations at unit scale, and tied logits have a standard deviation near 1. Norm weights are
// 1 + normal(0, 0.05) (Gemma 3 included: llama.cpp's converter stores Gemma's norm weights with
// the +1 already added, and its graph multiplies by them as they are). Biases are
// normal(0, 0.05). The values come from a counter-based generator seeded by (seed, tensor, row),
// so the bytes depend only on the seed, never on the thread count.
//
// Tensor types (the rule llama.cpp's quantizer follows, llama-quant.cpp):
//  1. 1-D tensors (norms, biases) are f32.
//  2. A matrix is stored in the requested type when its row length (dims[0]) is a whole number of
//     the type's blocks; token_embd and output too.
//  3. Otherwise it takes llama.cpp's substitute: q4_k -> q5_0, q5_k -> q5_1, q6_k -> q8_0,
//     q2_k / q3_k / iq4_xs -> iq4_nl; any other type -> f16.
//  4. If the substitute's block does not divide the row either, or kiln cannot quantize to it,
//     the matrix is f16.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "frontends/gguf/gguf_value.h"
#include "frontends/gguf/gguf_writer.h"
#include "frontends/gguf/model_presets.h"
#include "ir/dtype.h"
#include "ir/status.h"

namespace kiln::gguf {

struct MakeModelOptions {
  DType quant = DType::F32;
  uint64_t seed = 0;
  // Every tokenizer.* key is copied from this metadata, and the vocab size (token_embd's rows)
  // becomes its token count. nullptr: a generated vocab (generated_vocab()).
  const Metadata* tokenizer_from = nullptr;
  unsigned threads = 0;  // for generating and quantizing weights; 0: all hardware threads
};

// Types make-model writes: f32, f16, bf16 and the block types that kiln can quantize to and
// llama.cpp stores weights in.
std::vector<DType> make_model_types();

// The type a tensor of these dims is stored in when `requested` is asked for (rules above).
DType storage_type(DType requested, const std::vector<uint64_t>& dims);

// llama.cpp's general.file_type (llama_ftype) for a model quantized to `t`.
uint32_t file_type_of(DType t);

// A small valid tokenizer of the given family, padded with unused tokens to at least `pad_to`
// tokens: every tokenizer.* key llama.cpp reads for it.
//  - kGpt2Bpe: tokenizer.ggml.model "gpt2", pre "default"; the 256 bytes in GPT-2's
//    byte-to-unicode spelling (token id = byte value), tokens made by a few dozen English merges,
//    then <|bos|>, <|eos|>, <|im_start|>, <|im_end|> (control tokens) and a ChatML template.
//  - kSentencePiece: tokenizer.ggml.model "llama" as Gemma's: <pad> 0, <eos> 1, <bos> 2, <unk> 3,
//    <start_of_turn>, <end_of_turn>, byte tokens <0x00>..<0xFF>, then ▁-prefixed and plain pieces
//    with scores, and a Gemma chat template.
// Padding tokens are "<unused{N}>" (SentencePiece) or "<|unused_{N}|>" (BPE), of type unused.
Metadata generated_vocab(VocabKind kind, uint32_t pad_to = 0);

// The metadata and tensors of a model; the weights are generated while the writer writes, so a
// full-size model never sits in memory whole.
Result<GgufWriter> make_model(const ModelPreset& preset, const MakeModelOptions& options);

}  // namespace kiln::gguf
