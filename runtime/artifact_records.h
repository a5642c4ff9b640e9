// The small text records of a graph inside an artifact: its GraphSpec and its kernels'
// KernelInfo, one `key=value` block or one line per kernel. Text keeps `kiln inspect` readable
// and the parser simple; both decoders check every field and never trust the bytes.
#pragma once

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

}  // namespace kiln::artifact
