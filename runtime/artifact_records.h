// The small text records of a graph inside an artifact: its GraphSpec and its kernels'
// KernelInfo, one `key=value` block or one line per kernel. Text keeps `kiln inspect` readable
// and the parser simple; both decoders check every field and never trust the bytes.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "codegen/cpu/cpu_codegen.h"
#include "frontends/gguf/lower.h"
#include "ir/status.h"

namespace kiln::artifact {

std::string encode_spec(const lower::GraphSpec& spec);
Result<lower::GraphSpec> decode_spec(std::string_view text);

// One line per kernel: name, symbol, scratch, shared, args, phases, microkernels, packed
// operands (comma list or "-"), separated by tabs.
std::string encode_kernels(const std::vector<cpu::KernelInfo>& kernels);
Result<std::vector<cpu::KernelInfo>> decode_kernels(std::string_view text);

// The `constants` section: derived constants and packed weights by ConstantStore key. A text
// index, then the blobs, each at a 64-byte aligned offset from the section's start:
//   kiln-constants 1 COUNT\n
//   OFFSET\tSIZE\tKEY\n            (COUNT lines; OFFSET and SIZE 20 decimal digits)
//   zeros to a multiple of 64, then the blobs
struct StoredConstant {
  std::string key;
  std::span<const uint8_t> bytes;
};
Result<std::vector<uint8_t>> encode_constants(const std::vector<StoredConstant>& constants);
// Views into `section`: every offset and size is checked against it; keys are unique.
Result<std::vector<StoredConstant>> decode_constants(std::span<const uint8_t> section);

}  // namespace kiln::artifact
