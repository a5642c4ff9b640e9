// Shared helpers for the tests: where the real models and golden files are, random data, and
// running the kiln binary.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace kiln::test {

// Directory of committed test data (tests/data).
std::string data_dir();
// Path of a real model in $KILN_MODELS (default ~/.cache/kiln/models): "smollm2" or "gemma3".
// Returns "" when it is missing; tests then skip, or fail when $KILN_REQUIRE_MODELS=1 (CI).
std::string model_path(const std::string& which);
// Skips (or fails under KILN_REQUIRE_MODELS=1) the current test when the model is missing.
#define KILN_REQUIRE_MODEL(var, which)                                                     \
  std::string var = ::kiln::test::model_path(which);                                       \
  if (var.empty()) {                                                                       \
    if (::kiln::test::models_required()) FAIL() << "model " << which << " not in cache";   \
    GTEST_SKIP() << "model " << which << " not in $KILN_MODELS; run scripts/fetch-models"; \
  }
bool models_required();

// A scratch directory unique to this test binary, removed at exit.
std::string temp_dir();

std::string read_file(const std::string& path);
std::vector<uint8_t> read_bytes(const std::string& path);

// Random floats in [-scale, scale], never all zero.
std::vector<float> random_floats(size_t n, uint32_t seed, float scale = 1.0f);

// Runs the kiln binary with arguments (shell-quoted by the caller); captures output.
struct CommandResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};
CommandResult run_kiln(const std::string& args);

}  // namespace kiln::test
