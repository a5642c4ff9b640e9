// The Jinja interpreter: parity with Python's jinja2 on the feature snippets of
// tests/data/templates/snippets.json (made by scripts/goldens/make_template_goldens.py), error
// messages with lines and columns, and the budgets that keep hostile templates in check.
#include <gtest/gtest.h>

#include <ctime>
#include <nlohmann/json.hpp>

#include "frontends/gguf/jinja_from_json.h"
#include "frontends/gguf/jinja_template.h"
#include "tests/support/test_support.h"

namespace kiln::jinja {
namespace {

using Json = nlohmann::ordered_json;

// The time the goldens were made with (FIXED_NOW in the script).
RenderOptions pinned_time() {
  std::tm tm{};
  tm.tm_year = 2024 - 1900;
  tm.tm_mon = 6;
  tm.tm_mday = 26;
  tm.tm_hour = 9;
  tm.tm_min = 5;
  tm.tm_sec = 7;
  std::time_t t = timegm(&tm);
  gmtime_r(&t, &tm);  // fills in the weekday and day of the year
  RenderOptions o;
  o.fixed_time = tm;
  return o;
}

Result<std::string> render(std::string_view src, const Value& ctx = Value::object({}),
                           const RenderOptions& o = {}) {
  auto t = Template::parse(src);
  if (!t.ok()) return t.error();
  return t->render(ctx, o);
}

std::string must_render(std::string_view src, const Value& ctx = Value::object({})) {
  auto r = render(src, ctx);
  EXPECT_TRUE(r.ok()) << src << "\n" << r.message();
  return r.ok() ? *r : "";
}

std::string error_of(std::string_view src, const Value& ctx = Value::object({}),
                     const RenderOptions& o = {}) {
  auto r = render(src, ctx, o);
  EXPECT_FALSE(r.ok()) << src << " rendered " << (r.ok() ? *r : "");
  return r.ok() ? "" : r.message();
}

TEST(Jinja, SnippetsMatchPythonJinja2) {
  std::string text = test::read_file(test::data_dir() + "/templates/snippets.json");
  ASSERT_FALSE(text.empty()) << "missing snippets.json";
  Json cases = Json::parse(text);
  RenderOptions opt = pinned_time();
  int passed = 0, failed = 0;
  for (const Json& c : cases) {
    std::string src = c["template"].get<std::string>();
    auto r = render(src, from_json(c["context"]), opt);
    bool ok;
    std::string why;
    if (c.contains("output")) {
      std::string want = c["output"].get<std::string>();
      ok = r.ok() && *r == want;
      why = "want " + Json(want).dump() + "\n got  " + (r.ok() ? Json(*r).dump() : r.message());
    } else {
      const Json& e = c["error"];
      std::string msg = e["message"].get<std::string>();
      ok = !r.ok() && (!e["raised"].get<bool>() || r.message().find(msg) != std::string::npos);
      why = "want error " + e["type"].get<std::string>() + ": " + msg + "\n got  " +
            (r.ok() ? "output " + Json(*r).dump() : "error " + r.message());
    }
    if (ok) {
      ++passed;
    } else {
      ++failed;
      ADD_FAILURE() << "snippet " << c["id"] << ": " << Json(src).dump() << "\n " << why;
    }
  }
  std::printf("jinja2 snippet parity: %d of %zu\n", passed, cases.size());
  EXPECT_EQ(failed, 0);
  EXPECT_GE(passed, 150);
}

TEST(Jinja, WhitespaceControlFollowsTrimAndLstripBlocks) {
  EXPECT_EQ(must_render("a\n  {% if true %}\n  b\n  {% endif %}\nc"), "a\n  b\nc");
  EXPECT_EQ(must_render("{{ 'x' }}\n{{ 'y' }}\n"), "x\ny");  // one trailing newline dropped
  EXPECT_EQ(must_render("a {{- 'b' -}} c"), "abc");
  EXPECT_EQ(must_render("{% for i in [1, 2] %}\n  {{ i }}\n{% endfor %}"), "  1\n  2\n");
}

TEST(Jinja, SyntaxErrorsNameLineAndColumn) {
  EXPECT_EQ(error_of("line one\n{{ 1 + }}"), "template line 2, column 8: unexpected '}}'");
  EXPECT_EQ(error_of("{% if true %}\nunclosed"),
            "template line 2, column 9: unexpected end of template, expected 'elif' or 'else' or "
            "'endif'");
  EXPECT_EQ(error_of("{{ 'abc\n}}"), "template line 1, column 4: unexpected char '''");
  EXPECT_EQ(error_of("{% frobnicate %}"), "template line 1, column 4: unknown tag 'frobnicate'");
  EXPECT_EQ(error_of("\n\n{{ x | wordwrap }}"),
            "template line 3, column 8: unsupported filter 'wordwrap'");
  EXPECT_EQ(error_of("{{ x | nosuch }}"), "template line 1, column 8: unknown filter 'nosuch'");
  EXPECT_EQ(error_of("{{ x is nosuch }}"), "template line 1, column 9: unknown test 'nosuch'");
  EXPECT_EQ(error_of("{% include 'x' %}"), "template line 1, column 4: unsupported tag 'include'");
  EXPECT_EQ(error_of("{{ (1 ]"), "template line 1, column 7: unexpected ']', expected ')'");
}

TEST(Jinja, RuntimeErrorsNameTheLine) {
  EXPECT_EQ(error_of("a\n{{ raise_exception('bad role') }}"), "template line 2: bad role");
  EXPECT_EQ(error_of("\n\n{{ foo.bar }}"), "template line 3: 'foo' is undefined");
  EXPECT_EQ(error_of("{{ 1 + 'a' }}"),
            "template line 1: unsupported operand type(s) for +: 'int' and 'str'");
  EXPECT_EQ(error_of("{% for x in [1] %}\n{{ x.y.z }}{% endfor %}"),
            "template line 2: 'int object' has no attribute 'y'");
  EXPECT_EQ(error_of("{{ 'a'.expandtabs() }}"),
            "template line 1: unsupported method 'str.expandtabs'");
  // Deliberate differences from Python: 64-bit integers, and no text for a method object.
  EXPECT_EQ(error_of("{{ 9223372036854775807 + 1 }}"),
            "template line 1: integer overflow (kiln integers are 64-bit)");
  EXPECT_EQ(error_of("{{ {}.items }}"),
            "template line 1: cannot convert method 'dict.items' to a string");
  EXPECT_EQ(error_of("{{ [1].append(2) }}"),
            "template line 1: access to attribute 'append' of 'list' object is unsafe.");
}

TEST(Jinja, StrftimeNowUsesTheInjectedTime) {
  auto r = render("{{ strftime_now('%d %b %Y') }}", Value::object({}), pinned_time());
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(*r, "26 Jul 2024");
  // Without a pinned time it is today's date: just check it renders.
  EXPECT_EQ(must_render("{{ strftime_now('%Y')|length }}"), "4");
}

TEST(Jinja, StepBudgetStopsHugeLoops) {
  RenderOptions o;
  o.limits.max_steps = 100000;
  std::string e =
      error_of("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
               Value::object({}), o);
  EXPECT_NE(e.find("budget of 100000 steps"), std::string::npos) << e;
  // The defaults: 10M steps, 64 MiB of output.
  EXPECT_EQ(RenderLimits().max_steps, 10'000'000u);
  EXPECT_EQ(RenderLimits().max_output_bytes, size_t(64) << 20);
}

TEST(Jinja, OutputAndStringBudgets) {
  RenderOptions o;
  o.limits.max_output_bytes = 1000;
  std::string e = error_of("{% for i in range(2000) %}x{% endfor %}", Value::object({}), o);
  EXPECT_NE(e.find("exceeds the limit of 1000 bytes"), std::string::npos) << e;
  e = error_of("{{ 'x' * 100000000 }}");
  EXPECT_NE(e.find("string too long"), std::string::npos) << e;
  e = error_of(
      "{% set ns = namespace(s='xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx') %}{% for i in range(40) %}"
      "{% set ns.s = ns.s ~ ns.s %}{% endfor %}");
  EXPECT_FALSE(e.empty());
  e = error_of("{% set l = [1] * 50000 %}{% set l = l + l %}{{ (l * 100000)|length }}");
  EXPECT_NE(e.find("too long"), std::string::npos) << e;
}

TEST(Jinja, RecursionAndNestingAreBounded) {
  std::string e = error_of("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}");
  EXPECT_NE(e.find("recursion too deep"), std::string::npos) << e;
  std::string deep = std::string(500, '(') + "1" + std::string(500, ')');
  e = error_of("{{ " + deep + " }}");
  EXPECT_NE(e.find("nesting too deep"), std::string::npos) << e;
  std::string ifs;
  for (int i = 0; i < 300; ++i) ifs += "{% if true %}";
  e = error_of(ifs);
  EXPECT_NE(e.find("nesting too deep"), std::string::npos) << e;
  e = error_of(
      "{% set ns = namespace(l=[]) %}{% for i in range(1000) %}{% set ns.l = [ns.l] %}"
      "{% endfor %}");
  EXPECT_NE(e.find("nested too deeply"), std::string::npos) << e;
  // Chains built by loops in the parser (a.b.c..., 1+1+1..., x|f|f...) are bounded too.
  std::string chain = "{{ a";
  for (int i = 0; i < 5000; ++i) chain += ".b";
  e = error_of(chain + " }}");
  EXPECT_NE(e.find("expression nested too deeply"), std::string::npos) << e;
  chain = "{{ 1";
  for (int i = 0; i < 5000; ++i) chain += "+1";
  e = error_of(chain + " }}");
  EXPECT_NE(e.find("expression nested too deeply"), std::string::npos) << e;
  // A long elif chain is flat, not nested.
  std::string elifs = "{% if false %}";
  for (int i = 0; i < 5000; ++i) elifs += "{% elif false %}";
  EXPECT_EQ(must_render(elifs + "{% else %}end{% endif %}"), "end");
}

TEST(Jinja, NamespaceCyclesAreFreed) {
  // LeakSanitizer (in the sanitizer build) checks that the cycle is broken after rendering.
  auto r = render("{% set ns = namespace() %}{% set ns.self = ns %}{{ ns.self.self is defined }}");
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(*r, "True");
  EXPECT_NE(error_of("{% set ns = namespace() %}{% set ns.self = ns %}{{ ns }}").find("deeply"),
            std::string::npos);
  EXPECT_TRUE(render("{% for x in [1, 2] %}{{ loop.changed(loop) }}{% endfor %}").ok());
}

TEST(Jinja, CallerCannotOutliveItsBlock) {
  std::string e = error_of(
      "{% set ns = namespace() %}{% macro keep() %}{% set ns.c = caller %}{% endmacro %}"
      "{% call keep() %}x{% endcall %}{{ ns.c() }}");
  EXPECT_NE(e.find("outside of its call block"), std::string::npos) << e;
}

TEST(Jinja, ValuesBuildAndPrintLikePython) {
  Value v = Value::object({{"b", Value::integer(1)},
                           {"a", Value::list({Value::number(0.5), Value::none(),
                                              Value::boolean(true), Value::string("it's")})}});
  EXPECT_EQ(must_render("{{ v }}|{{ v|tojson }}|{{ v.a[3] }}", Value::object({{"v", v}})),
            "{'b': 1, 'a': [0.5, None, True, \"it's\"]}|{\"b\": 1, \"a\": [0.5, null, true, "
            "\"it's\"]}|it's");
  EXPECT_EQ(v.depth(), 2);
  EXPECT_EQ(v.get("b")->as_int(), 1);
  EXPECT_EQ(v.get("zz"), nullptr);
}

TEST(Jinja, StringsOfOnlySpecialTokenTextRenderVerbatim) {
  Value ctx = Value::object({{"s", Value::string("<|im_start|><|im_end|>{{ x }}{% if %}</s>")}});
  EXPECT_EQ(must_render("{{ s }}|{{ s|length }}", ctx),
            "<|im_start|><|im_end|>{{ x }}{% if %}</s>|41");
}

TEST(Jinja, InvalidUtf8IsCarriedThrough) {
  std::string bad = "a\xff\xc3(b";
  Value ctx = Value::object({{"s", Value::string(bad)}});
  EXPECT_EQ(must_render("{{ s }}{{ s|length }}{{ s[::-1] }}", ctx), bad +
                                                                        "5b(\xc3\xff"
                                                                        "a");
}

}  // namespace
}  // namespace kiln::jinja
