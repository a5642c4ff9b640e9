// The smallest kiln program: load a model, stream a greedy continuation. `example_hello MODEL`.
#include <cstdio>

#include "runtime/kiln.h"

int main(int argc, char** argv) {
  auto model = kiln::Model::load(argc > 1 ? argv[1] : "model.gguf");
  if (!model.ok()) return std::fprintf(stderr, "%s\n", model.message().c_str()), 1;
  kiln::GenerateOptions options;
  options.max_tokens = 16;
  options.sampling = kiln::SamplingOptions::greedy();
  auto out = (*model)->generate("The capital of France is", options, [](const kiln::Token& t) {
    return std::fputs(t.text.c_str(), stdout), true;
  });
  return std::puts(""), out.ok() ? 0 : 1;
}
