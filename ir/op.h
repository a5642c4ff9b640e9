// Ops, their traits and their attribute specs, generated from ir/ops.def.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::ir {

enum class Op : uint16_t {
#define X(E, name, mn, mx, nr, traits, attrs) E,
#include "ir/ops.def"
#undef X
};

// Op traits (bit flags) used by passes instead of per-op special cases.
enum Trait : uint32_t {
  kSource = 1u << 0,        // no operands: input, weight, state, arg
  kSink = 1u << 1,          // no results: output, yield
  kSideEffect = 1u << 2,    // writes memory other than its result (never dead)
  kConstant = 1u << 3,      // a compile-time constant (weights)
  kElementwise = 1u << 4,   // out[i] depends on in[i] only (after broadcasting)
  kBroadcast = 1u << 5,     // operands broadcast numpy-style
  kReduction = 1u << 6,     // reduces (or normalizes) along the last axis
  kContraction = 1u << 7,   // matrix product
  kDataMovement = 1u << 8,  // moves elements without arithmetic
  kView = 1u << 9,          // result aliases the operand's memory (free)
  kOpaque = 1u << 10,       // a kernel of its own; fusion does not look inside
  kInPlace = 1u << 11,      // result may reuse the first operand's buffer
  kRowLocal = 1u << 12,     // elementwise within a row of the last axis (needs whole rows)
  kRegion = 1u << 13,       // holds a subgraph
};

enum class AttrKind : uint8_t { Int, Float, String, Ints, DType };

struct AttrSpec {
  std::string name;
  AttrKind kind;
  std::optional<std::string> default_text;  // as written in ops.def
};

struct OpInfo {
  Op op;
  std::string_view name;
  int min_operands;
  int max_operands;  // -1: any number
  int num_results;   // -1: variable (regions)
  uint32_t traits;
  std::vector<AttrSpec> attrs;

  bool has(Trait t) const { return (traits & t) != 0; }
};

const OpInfo& op_info(Op op);
std::string_view op_name(Op op);
std::optional<Op> op_from_name(std::string_view name);
int num_ops();

}  // namespace kiln::ir
