// The IR's text form. `print` and `parse` round-trip: print(parse(print(g))) == print(g).
//
//   graph decode {
//     %tokens = input {name="tokens"} : i32[1, 1]
//     %0 = get_rows %token_embd, %tokens : f32[1, 1, 576]
//     output %logits {name="logits"}
//   }
//
// Named values print by name; unnamed ones are numbered in order of appearance.
#pragma once

#include <string>

#include "ir/graph.h"

namespace kiln::ir {

std::string print(const Graph& g);
// One node on one line (region bodies omitted), for messages.
std::string print_node(const Node& n);
// Graphviz dot and JSON renderings for `kiln ir --format`.
std::string print_dot(const Graph& g);
std::string print_json(const Graph& g);

}  // namespace kiln::ir
