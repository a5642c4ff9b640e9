// CRC32C (Castagnoli), the checksum of every artifact section (docs/artifact.md).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

namespace kiln::artifact {

// CRC32C of `bytes`, continuing from `crc` (the CRC32C of the bytes before them; 0 to start).
uint32_t crc32c(std::span<const uint8_t> bytes, uint32_t crc = 0);

// Called from a worker thread for each piece of a range once it is checksummed.
using ChunkDone = std::function<void(size_t range, std::span<const uint8_t> piece)>;
// The CRC32C of each range, computed in pieces of a few MiB spread over up to `threads` threads
// (one for small inputs), `done` called after each piece.
std::vector<uint32_t> crc32c_ranges(std::span<const std::span<const uint8_t>> ranges, int threads,
                                    const ChunkDone& done = {});

}  // namespace kiln::artifact
