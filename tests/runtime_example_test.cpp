// Runs examples/hello.cpp (built as example_hello) on the real SmolLM2 model: the ~7-line program
// of the public API must build, load a model and print its greedy continuation.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <cstdlib>

#include "tests/support/test_support.h"

namespace kiln {
namespace {

TEST(Example, HelloGeneratesText) {
#ifndef KILN_EXAMPLE_HELLO
  GTEST_SKIP() << "examples/ not configured";
#else
  KILN_REQUIRE_MODEL(path, "smollm2");
  std::string out = test::temp_dir() + "/hello.out";
  std::string cmd = std::string(KILN_EXAMPLE_HELLO) + " '" + path + "' >" + out + " 2>&1";
  int rc = std::system(cmd.c_str());
  std::string text = test::read_file(out);
  ASSERT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 0) << text;
  // llama.cpp's greedy continuation starts " Paris." (tests/data/generation/smollm2.json).
  EXPECT_EQ(text.rfind(" Paris.", 0), 0u) << text;
#endif
}

}  // namespace
}  // namespace kiln
