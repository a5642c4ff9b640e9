// Lowering: builds the IR graph of a GGUF model. One file per architecture family
// (lower_llama.cpp, lower_qwen.cpp, lower_gemma3.cpp); this header is the entry point.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "frontends/gguf/gguf_file.h"
#include "ir/graph.h"

namespace kiln::lower {

// Which graph to build. Shapes are static: a graph is compiled once per spec.
struct GraphSpec {
  int batch = 1;            // B: sequences per call
  int tokens = 1;           // T: tokens per sequence (1 = decode, else a prefill bucket)
  int ctx = 0;              // KV-cache length (0: min(model context, 4096))
  int slots = 0;            // KV-cache sequence slots S (0: = batch)
  bool all_logits = false;  // logits for every token (perplexity) instead of `rows`
  DType kv_type = DType::F16;

  std::string name() const;  // "decode_b1", "prefill_t128", ...
};

// Parses "decode", "prefill:128" (with batch) into a spec.
Result<GraphSpec> parse_graph_spec(const std::string& text, int batch, int ctx);

// Builds the graph; errors name the missing key or tensor, or list the supported architectures.
Result<std::unique_ptr<ir::Graph>> lower_gguf(const gguf::GgufFile& file, const GraphSpec& spec);

std::vector<std::string> supported_architectures();

}  // namespace kiln::lower
