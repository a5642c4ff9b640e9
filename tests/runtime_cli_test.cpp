// `kiln run`, `kiln chat`, `kiln bench` and `kiln perplexity` through the binary, on a tiny model
// with random weights (`kiln make-model --preset tiny-llama`): exit codes, what goes to stdout and
// what to stderr, the compiled backend against the interpreter, errors that say what went wrong.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <regex>

#include "codegen/cpu/cpu_codegen.h"
#include "tests/support/test_support.h"

namespace kiln {
namespace {

class Cli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_ = test::temp_dir() + "/tiny-llama.gguf";
    auto r = test::run_kiln("make-model --preset tiny-llama --quant q8_0 --seed 3 --threads 2 -o " +
                            model_);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  static std::string model_;
};
std::string Cli::model_;

int count(const std::string& s, const std::string& what) {
  int n = 0;
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
  return n;
}

TEST(CliHelp, EveryCommandHasHelp) {
  for (const char* cmd : {"run", "chat", "bench", "perplexity"}) {
    auto r = test::run_kiln(std::string(cmd) + " --help");
    EXPECT_EQ(r.exit_code, 0) << cmd << ": " << r.err;
    EXPECT_NE(r.out.find("--threads"), std::string::npos) << cmd << ": " << r.out;
  }
  auto r = test::run_kiln("run --help");
  for (const char* opt : {"--prompt", "--n-predict", "--temp", "--top-k", "--top-p", "--seed"})
    EXPECT_NE(r.out.find(opt), std::string::npos) << opt;
}

TEST_F(Cli, RunGreedyIsDeterministicAndOnlyTextGoesToStdout) {
  const std::string args = "run " + model_ + " -p 'hello world' -n 12 --temp 0 --ignore-eos -c 64";
  auto a = test::run_kiln(args + " -t 2");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  auto b = test::run_kiln(args + " -t 1");
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(a.out, b.out);  // same tokens on one and two threads
  EXPECT_FALSE(a.out.empty());
  EXPECT_EQ(a.out.find("tok/s"), std::string::npos) << "statistics belong on stderr";
  EXPECT_NE(a.err.find("tok/s"), std::string::npos) << a.err;
  EXPECT_NE(a.err.find("generated 12 tokens"), std::string::npos) << a.err;
}

TEST_F(Cli, RunCompiledEqualsInterpreter) {
  if (!cpu::llvm_available()) GTEST_SKIP() << "built without LLVM";
  const std::string args = "run " + model_ + " -p 'the cat' -n 10 --temp 0 --ignore-eos -c 64 -q";
  auto cpu = test::run_kiln(args + " --backend cpu");
  ASSERT_EQ(cpu.exit_code, 0) << cpu.err;
  auto interp = test::run_kiln(args + " --backend interp");
  ASSERT_EQ(interp.exit_code, 0) << interp.err;
  EXPECT_EQ(cpu.out, interp.out);
  EXPECT_TRUE(cpu.err.empty()) << "-q: " << cpu.err;
}

TEST_F(Cli, RunSamplingFollowsTheSeed) {
  const std::string args = "run " + model_ +
                           " -p 'one two' -n 16 --temp 1.5 --top-k 0 --top-p 1 --min-p 0 "
                           "--ignore-eos -c 64 -q --seed ";
  auto a = test::run_kiln(args + "7");
  auto b = test::run_kiln(args + "7");
  auto c = test::run_kiln(args + "8");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_NE(a.out, c.out);
}

TEST_F(Cli, RunErrorsSayWhat) {
  auto r = test::run_kiln("run " + model_ +
                          " -p 'a b c d e f g h i j k l m n o p q r s t u v w x y z' -c 8");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("context overflow"), std::string::npos) << r.err;
  r = test::run_kiln("run " + test::temp_dir() + "/missing.gguf -p hi");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("missing.gguf"), std::string::npos) << r.err;
  r = test::run_kiln("run " + model_ + " -p hi --kv q4_0");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("q4_0"), std::string::npos) << r.err;
}

TEST_F(Cli, ChatTakesTurnsFromStdinAndReusesTheCache) {
  const std::string in = test::temp_dir() + "/turns.txt";
  std::ofstream(in) << "Hi there\nAnd then?\n/exit\nnever read\n";
  auto r = test::run_kiln("chat " + model_ + " -n 6 --temp 0 -c 256 -v < " + in);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(count(r.err, "prompt tokens"), 2) << r.err;
  // The second turn prefills only what is new: "N prompt tokens (M new)" with M < N.
  std::smatch m;
  std::string err = r.err;
  std::vector<std::pair<int, int>> turns;
  std::regex re(R"((\d+) prompt tokens \((\d+) new\))");
  for (auto it = std::sregex_iterator(err.begin(), err.end(), re); it != std::sregex_iterator();
       ++it)
    turns.push_back({std::stoi((*it)[1]), std::stoi((*it)[2])});
  ASSERT_EQ(turns.size(), 2u) << r.err;
  EXPECT_EQ(turns[0].first, turns[0].second);
  EXPECT_GT(turns[1].first, turns[0].first);
  EXPECT_LT(turns[1].second, turns[1].first) << r.err;
}

TEST_F(Cli, BenchReportsMedianAndRangePerThreadCount) {
  auto r = test::run_kiln("bench " + model_ + " -p 16 -n 8 -t 1,2 -r 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(count(r.out, " pp16 "), 2) << r.out;
  EXPECT_EQ(count(r.out, " tg8 "), 2) << r.out;
  std::regex row(R"(\|\s+([12])\s+\|\s+(pp16|tg8)\s+\|\s+([0-9.]+) \(([0-9.]+) - ([0-9.]+)\))");
  int rows = 0;
  for (auto it = std::sregex_iterator(r.out.begin(), r.out.end(), row);
       it != std::sregex_iterator(); ++it, ++rows) {
    double med = std::stod((*it)[3]), lo = std::stod((*it)[4]), hi = std::stod((*it)[5]);
    EXPECT_GT(lo, 0);
    EXPECT_LE(lo, med);
    EXPECT_LE(med, hi);
  }
  EXPECT_EQ(rows, 4) << r.out;
  r = test::run_kiln("bench " + model_ + " -t 0,x");
  EXPECT_NE(r.exit_code, 0);
}

TEST_F(Cli, PerplexityLastLineAndSameOnBothBackends) {
  const std::string text = test::temp_dir() + "/text.txt";
  {
    std::ofstream f(text);
    std::mt19937 rng(17);
    const char* words[] = {"the", "cat", "sat",  "on",   "a",    "mat",   "and", "then", "it",
                           "ran", "far", "away", "from", "home", "while", "we",  "slept"};
    for (int i = 0; i < 300; ++i) f << words[rng() % 17] << (i % 12 == 11 ? ".\n" : " ");
  }
  auto ppl = [&](const std::string& backend) {
    auto r = test::run_kiln("perplexity " + model_ + " -f " + text + " -c 32 --backend " + backend);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::string out = r.out;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    std::string last = out.substr(out.rfind('\n') + 1);
    EXPECT_EQ(last.rfind("ppl = ", 0), 0u) << r.out;
    return last.size() > 6 ? std::stod(last.substr(6)) : -1.0;
  };
  const double interp = ppl("interp");
  EXPECT_TRUE(std::isfinite(interp) && interp > 1.0) << interp;
  if (cpu::llvm_available()) {
    const double cpu = ppl("cpu");
    EXPECT_NEAR(cpu, interp, 0.01 * interp);
  }
  auto r = test::run_kiln("perplexity " + model_ + " -f " + text + " -c 4096");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("fewer than one window"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace kiln
