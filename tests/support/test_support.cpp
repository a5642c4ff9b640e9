#include "tests/support/test_support.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace kiln::test {
namespace fs = std::filesystem;

std::string data_dir() {
  return KILN_TEST_DATA;
}

bool models_required() {
  const char* v = std::getenv("KILN_REQUIRE_MODELS");
  return v && std::string(v) == "1";
}

static std::string models_dir() {
  if (const char* m = std::getenv("KILN_MODELS"); m && *m) return m;
  const char* home = std::getenv("HOME");
  return std::string(home ? home : "/root") + "/.cache/kiln/models";
}

std::string model_path(const std::string& which) {
  std::string file;
  if (which == "smollm2")
    file = "SmolLM2-135M-Instruct.Q4_1.gguf";
  else if (which == "gemma3")
    file = "gemma-3-270m-q4_k_m.gguf";
  else
    return "";
  std::string p = models_dir() + "/" + file;
  return fs::exists(p) ? p : "";
}

std::string temp_dir() {
  static std::string dir = [] {
    std::string d =
        (fs::temp_directory_path() / ("kiln-test-" + std::to_string(getpid()))).string();
    fs::create_directories(d);
    std::atexit([] {
      std::error_code ec;
      fs::remove_all(fs::temp_directory_path() / ("kiln-test-" + std::to_string(getpid())), ec);
    });
    return d;
  }();
  return dir;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::string s = read_file(path);
  return std::vector<uint8_t>(s.begin(), s.end());
}

std::vector<float> random_floats(size_t n, uint32_t seed, float scale) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-scale, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  if (n > 0) v[0] = scale * 0.5f;  // never all zero
  return v;
}

CommandResult run_kiln(const std::string& args) {
  static int counter = 0;
  std::string base = temp_dir() + "/cmd" + std::to_string(counter++);
  std::string cmd = std::string(KILN_BINARY) + " " + args + " >" + base + ".out 2>" + base + ".err";
  int rc = std::system(cmd.c_str());
  CommandResult r;
  r.exit_code = WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + WTERMSIG(rc);
  r.out = read_file(base + ".out");
  r.err = read_file(base + ".err");
  return r;
}

}  // namespace kiln::test
