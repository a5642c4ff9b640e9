// What a kiln::Model holds (runtime/kiln.h), shared by the files that implement it: kiln.cpp
// (loading, generation, chat, perplexity) and generate_batch.cpp.
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include "frontends/gguf/chat_template.h"
#include "frontends/gguf/gguf_file.h"
#include "frontends/gguf/tokenizer.h"
#include "runtime/artifact_loader.h"
#include "runtime/backend.h"
#include "runtime/context.h"
#include "runtime/kiln.h"

namespace kiln {

struct Model::Impl {
  // A .kiln artifact (issue 6), declared first so that it outlives the weights mapped from it.
  std::unique_ptr<artifact::LoadedArtifact> artifact;
  std::unique_ptr<gguf::GgufFile> file;
  std::unique_ptr<gguf::Tokenizer> tokenizer;
  std::optional<gguf::ChatTemplate> chat_template;
  std::unique_ptr<runtime::Backend> backend;
  std::unique_ptr<runtime::Context> context;
  LoadOptions options;
  ModelInfo info;
  // Decode batch sizes generate_batch may use: an artifact's (empty: any, built when asked) and
  // the KV-cache slots.
  std::vector<int> batches;
  int slots = 1;

  Result<Generation> generate(std::span<const int32_t> prompt, const GenerateOptions& o,
                              const StreamFn& stream);
};

}  // namespace kiln
