// Golden pass tests: every tests/ir/*.kir file is an IR graph with directives in `//` comments
// (so the whole file parses as the input graph):
//
//   // RUN: canonicalize,fuse            the pipeline (required)
//   // OPTION: epilogue_max_row=64       a PassOptions field (prologue_max_rows, alignment too)
//   // KERNELS: 3                        top-level kernels after the pipeline
//   // ERROR: text                       the pipeline must fail with a message containing text
//   // CHECK: text                       a later line contains text (in order, as FileCheck)
//   // CHECK-NEXT: text                  the line right after the previous match contains text
//   // CHECK-NOT: text                   no line between the previous and next match contains it
//   // EXPECT:                           the rest of the file, each line "// "-prefixed, is the
//   // graph ... (exact)                 exact output: print(graph) + the memory plan if any
//
// KILN_UPDATE_GOLDENS=1 rewrites existing EXPECT blocks from the actual output (review the diff).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "ir/parser.h"
#include "ir/printer.h"
#include "passes/pass_manager.h"
#include "passes/stats.h"

namespace kiln::passes {
namespace {

namespace fs = std::filesystem;

std::string golden_dir() {
  return std::string(KILN_SOURCE_DIR) + "/tests/ir";
}

std::vector<std::string> golden_files() {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(golden_dir(), ec))
    if (e.path().extension() == ".kir") out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> lines;
  std::stringstream ss(s);
  for (std::string l; std::getline(ss, l);) lines.push_back(l);
  return lines;
}

struct Directive {
  std::string kind;  // CHECK, CHECK-NEXT, CHECK-NOT
  std::string text;
  int line;
};

struct Golden {
  std::string run;
  std::vector<std::pair<std::string, std::string>> options;
  std::vector<Directive> checks;
  int kernels = -1;
  std::string error;
  bool has_expect = false;
  std::string expect;
  size_t expect_offset = 0;  // byte offset of the "// EXPECT:" line
};

Golden read_golden(const std::string& text) {
  Golden g;
  std::vector<std::string> lines = split_lines(text);
  size_t offset = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string& l = lines[i];
    auto value = [&](const std::string& tag) -> std::optional<std::string> {
      std::string p = "// " + tag + ":";
      if (l.rfind(p, 0) != 0) return std::nullopt;
      std::string v = l.substr(p.size());
      if (!v.empty() && v[0] == ' ') v.erase(0, 1);
      return v;
    };
    if (auto v = value("EXPECT")) {
      g.has_expect = true;
      g.expect_offset = offset;
      for (size_t j = i + 1; j < lines.size(); ++j) {
        const std::string& e = lines[j];
        g.expect += (e.rfind("// ", 0) == 0  ? e.substr(3)
                     : e.rfind("//", 0) == 0 ? e.substr(2)
                                             : e) +
                    "\n";
      }
      break;
    }
    if (auto v = value("RUN"))
      g.run = *v;
    else if (auto v = value("OPTION")) {
      size_t eq = v->find('=');
      g.options.push_back({v->substr(0, eq), eq == std::string::npos ? "" : v->substr(eq + 1)});
    } else if (auto v = value("KERNELS"))
      g.kernels = std::atoi(v->c_str());
    else if (auto v = value("ERROR"))
      g.error = *v;
    else if (auto v = value("CHECK-NEXT"))
      g.checks.push_back({"CHECK-NEXT", *v, int(i + 1)});
    else if (auto v = value("CHECK-NOT"))
      g.checks.push_back({"CHECK-NOT", *v, int(i + 1)});
    else if (auto v = value("CHECK"))
      g.checks.push_back({"CHECK", *v, int(i + 1)});
    offset += l.size() + 1;
  }
  return g;
}

// Matches CHECK directives in order; returns "" or what failed.
std::string match_checks(const std::vector<Directive>& checks,
                         const std::vector<std::string>& out) {
  size_t next = 0;  // first line a CHECK may match
  std::vector<const Directive*> pending_not;
  auto contains = [](const std::string& line, const std::string& text) {
    return line.find(text) != std::string::npos;
  };
  auto check_nots = [&](size_t from, size_t to) -> std::string {
    for (const Directive* d : pending_not)
      for (size_t i = from; i < to && i < out.size(); ++i)
        if (contains(out[i], d->text))
          return "line " + std::to_string(d->line) + ": CHECK-NOT '" + d->text +
                 "' found in output line " + std::to_string(i + 1) + ": " + out[i];
    pending_not.clear();
    return "";
  };
  for (const Directive& d : checks) {
    if (d.kind == "CHECK-NOT") {
      pending_not.push_back(&d);
      continue;
    }
    size_t found = out.size();
    if (d.kind == "CHECK-NEXT") {
      if (next < out.size() && contains(out[next], d.text)) found = next;
    } else {
      for (size_t i = next; i < out.size(); ++i)
        if (contains(out[i], d.text)) {
          found = i;
          break;
        }
    }
    if (found == out.size())
      return "line " + std::to_string(d.line) + ": " + d.kind + " '" + d.text +
             "' not found after output line " + std::to_string(next);
    if (std::string e = check_nots(next, found); !e.empty()) return e;
    next = found + 1;
  }
  return check_nots(next, out.size());
}

Status apply_option(PassOptions& o, const std::string& k, const std::string& v) {
  int64_t x = std::atoll(v.c_str());
  if (k == "epilogue_max_row")
    o.epilogue_max_row = x;
  else if (k == "prologue_max_rows")
    o.prologue_max_rows = x;
  else if (k == "alignment")
    o.alignment = uint64_t(x);
  else
    return make_error("unknown OPTION '", k, "'");
  return Status::Ok();
}

// Runs one golden file; failures name the file.
void check_golden(const std::string& file) {
  const std::string path = golden_dir() + "/" + file;
  SCOPED_TRACE(path);
  std::string text = read_text(path);
  Golden gold = read_golden(text);
  ASSERT_FALSE(gold.run.empty()) << path << ": no '// RUN:' line";

  auto parsed = ir::parse(text);
  ASSERT_TRUE(parsed.ok()) << path << ": " << parsed.message();
  ir::Graph& g = **parsed;
  PassContext ctx;
  ctx.options.verify_each = true;
  for (const auto& [k, v] : gold.options) {
    Status st = apply_option(ctx.options, k, v);
    ASSERT_TRUE(st.ok()) << path << ": " << st.message();
  }
  Status st = run_pipeline(gold.run, g, ctx);
  if (!gold.error.empty()) {
    ASSERT_FALSE(st.ok()) << path << ": pipeline succeeded, expected error: " << gold.error;
    EXPECT_NE(st.message().find(gold.error), std::string::npos)
        << path << ": error was: " << st.message();
    return;
  }
  ASSERT_TRUE(st.ok()) << path << ": " << st.message();

  std::string out = ir::print(g);
  if (ctx.plan) {
    out += ctx.plan->str();
    Status v = validate(*ctx.plan, g);
    EXPECT_TRUE(v.ok()) << path << ": " << v.message();
  }
  // The output parses back to the same text.
  auto again = ir::parse(out);
  ASSERT_TRUE(again.ok()) << path << ": output does not parse: " << again.message() << "\n" << out;
  EXPECT_EQ(ir::print(**again), ir::print(g)) << path;

  if (gold.kernels >= 0) {
    EXPECT_EQ(graph_stats(g).kernels, gold.kernels) << path << "\n" << out;
  }
  std::string failure = match_checks(gold.checks, split_lines(out));
  EXPECT_TRUE(failure.empty()) << path << ": " << failure << "\noutput:\n" << out;

  const char* update = std::getenv("KILN_UPDATE_GOLDENS");
  if (gold.has_expect && update && std::string(update) == "1") {
    std::string expect;
    for (const std::string& l : split_lines(out)) expect += (l.empty() ? "//" : "// " + l) + "\n";
    std::ofstream(path, std::ios::binary) << text.substr(0, gold.expect_offset) << "// EXPECT:\n"
                                          << expect;
    return;
  }
  if (gold.has_expect) {
    EXPECT_EQ(out, gold.expect) << path << ": output differs from its EXPECT block";
  }
}

std::string test_name(const ::testing::TestParamInfo<std::string>& info) {
  std::string s = info.param.substr(0, info.param.size() - 4);
  for (char& c : s)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return s;
}

// One test per file (names listed when the binary is built) ...
class GoldenTest : public ::testing::TestWithParam<std::string> {};
TEST_P(GoldenTest, Matches) {
  check_golden(GetParam());
}
INSTANTIATE_TEST_SUITE_P(Ir, GoldenTest, ::testing::ValuesIn(golden_files()), test_name);

// ... and every file in the directory as it is when the tests run, so a file added since the
// last build is not skipped.
TEST(Golden, EveryFileInTheDirectory) {
  std::vector<std::string> files = golden_files();
  EXPECT_GE(files.size(), 15u) << golden_dir();
  for (const std::string& f : files) check_golden(f);
}

}  // namespace
}  // namespace kiln::passes
