// Tiny random-weight models from `kiln make-model` presets, for tests that need a whole model
// without the real files.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "frontends/gguf/gguf_file.h"
#include "ir/dtype.h"

namespace kiln::test {

struct TinyModel {
  std::vector<uint8_t> bytes;            // the GGUF file
  std::unique_ptr<gguf::GgufFile> file;  // parsed from `bytes`; null after a failure
  std::string path;                      // where it was written, when asked to be
};

// Preset `preset` with weights quantized to `quant`, random from `seed`. With `write`, the file is
// also written to temp_dir() as PRESET-QUANT.gguf (for code that opens a path). Failures are
// reported as test failures and leave `file` null.
TinyModel make_tiny_model(const std::string& preset, DType quant, uint32_t seed,
                          bool write = false);

}  // namespace kiln::test
