// Chat templates: byte-for-byte parity with Python's jinja2 (as transformers renders them) on
// every (template, conversation, add_generation_prompt) golden in tests/data/templates/goldens/,
// the GGUF loading rules, and the `kiln template` command.
#include <gtest/gtest.h>

#include <ctime>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "frontends/gguf/chat_template.h"
#include "frontends/gguf/gguf_file.h"
#include "frontends/gguf/jinja_from_json.h"
#include "tests/support/test_support.h"

namespace kiln::gguf {
namespace {

using Json = nlohmann::ordered_json;
using jinja::Value;

std::string templates_dir() {
  return test::data_dir() + "/templates";
}

Json read_json(const std::string& path) {
  std::string text = test::read_file(path);
  EXPECT_FALSE(text.empty()) << "missing " << path;
  return text.empty() ? Json() : Json::parse(text);
}

jinja::RenderOptions pinned_time() {  // FIXED_NOW of make_template_goldens.py
  std::tm tm{};
  tm.tm_year = 2024 - 1900;
  tm.tm_mon = 6;
  tm.tm_mday = 26;
  tm.tm_hour = 9;
  tm.tm_min = 5;
  tm.tm_sec = 7;
  std::time_t t = timegm(&tm);
  gmtime_r(&t, &tm);
  jinja::RenderOptions o;
  o.fixed_time = tm;
  return o;
}

struct Conversation {
  Value messages, tools;
  std::vector<std::pair<std::string, Value>> kwargs;
};

std::map<std::string, Conversation> load_conversations() {
  std::map<std::string, Conversation> out;
  for (const auto& e : std::filesystem::directory_iterator(templates_dir() + "/conversations")) {
    if (e.path().extension() != ".json") continue;
    Json j = read_json(e.path().string());
    Conversation c;
    c.messages = jinja::from_json(j["messages"]);
    if (j.contains("tools")) c.tools = jinja::from_json(j["tools"]);
    if (j.contains("kwargs"))
      for (auto it = j["kwargs"].begin(); it != j["kwargs"].end(); ++it)
        c.kwargs.emplace_back(it.key(), jinja::from_json(*it));
    out[e.path().stem().string()] = std::move(c);
  }
  return out;
}

TEST(ChatTemplate, EveryGoldenMatchesPythonJinja2) {
  Json manifest = read_json(templates_dir() + "/templates.json");
  auto conversations = load_conversations();
  ASSERT_GE(conversations.size(), 15u);
  int cases = 0, passed = 0, templates = 0;
  for (auto it = manifest.begin(); it != manifest.end(); ++it) {
    std::string name = it.key();
    std::string source = test::read_file(templates_dir() + "/" + (*it)["file"].get<std::string>());
    auto ct = ChatTemplate::from_source(source, (*it)["bos_token"], (*it)["eos_token"]);
    ASSERT_TRUE(ct.ok()) << name << ": " << ct.message();
    ct->set_render_options(pinned_time());
    ++templates;
    int tpassed = 0, tcases = 0;
    for (const Json& g : read_json(templates_dir() + "/goldens/" + name + ".json")) {
      std::string conv = g["conversation"];
      bool agp = g["add_generation_prompt"];
      ASSERT_TRUE(conversations.count(conv)) << "unknown conversation " << conv;
      const Conversation& c = conversations[conv];
      auto r = ct->apply(c.messages, agp, c.tools, c.kwargs);
      std::string label = name + " x " + conv + (agp ? " (add_generation_prompt)" : "");
      ++cases, ++tcases;
      if (g.contains("output")) {
        std::string want = g["output"];
        if (!r.ok()) {
          ADD_FAILURE() << label << ": jinja2 rendered, kiln failed: " << r.message();
          continue;
        }
        if (*r != want) {
          size_t at = 0;
          while (at < want.size() && at < r->size() && want[at] == (*r)[at]) ++at;
          ADD_FAILURE() << label << ": first difference at byte " << at << "\n want "
                        << Json(want.substr(at, 80)).dump() << "\n got  "
                        << Json(r->substr(at, 80)).dump();
          continue;
        }
      } else {
        const Json& e = g["error"];
        std::string msg = e["message"];
        if (r.ok()) {
          ADD_FAILURE() << label << ": jinja2 raised " << e["type"] << " (" << msg
                        << "), kiln rendered";
          continue;
        }
        if (e["raised"].get<bool>() && r.message().find(msg) == std::string::npos) {
          ADD_FAILURE() << label << ": want the template's message '" << msg << "', got '"
                        << r.message() << "'";
          continue;
        }
      }
      ++passed, ++tpassed;
    }
    std::printf("  %-20s %3d of %3d\n", name.c_str(), tpassed, tcases);
  }
  std::printf("chat template parity: %d of %d cases (%d templates x %zu conversations x 2)\n",
              passed, cases, templates, conversations.size());
  EXPECT_EQ(passed, cases);
  EXPECT_GE(cases, 100);
  EXPECT_GE(templates, 9);
}

TEST(ChatTemplate, MessagesFromStructs) {
  auto ct = ChatTemplate::from_source(kChatMLTemplate, "<s>", "</s>");
  ASSERT_TRUE(ct.ok()) << ct.message();
  std::vector<ChatMessage> msgs = {{"system", "Be brief.", {}}, {"user", "Hi", {}}};
  auto r = ct->apply(msgs, true);
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(*r,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\n");
  // Extra fields reach the template, and replace role/content.
  auto t2 = ChatTemplate::from_source(
      "{% for m in messages %}{{ m.role }}:{{ m.name }}:{{ m.content }};{% endfor %}", "", "");
  ASSERT_TRUE(t2.ok());
  msgs = {{"user", "x",
           Value::object({{"name", Value::string("ann")}, {"content", Value::string("y")}})}};
  EXPECT_EQ(*t2->apply(msgs, false), "user:ann:y;");
}

TEST(ChatTemplate, ExtraKwargsAndToolsReachTheTemplate) {
  auto ct = ChatTemplate::from_source(
      "{{ bos_token }}{{ tools is none }}{{ date_string }}{{ eos_token }}", "<b>", "<e>");
  ASSERT_TRUE(ct.ok());
  Value msgs = Value::list({});
  EXPECT_EQ(*ct->apply(msgs, false), "<b>True<e>");
  EXPECT_EQ(*ct->apply(msgs, false, Value::list({Value::object({})}),
                       {{"date_string", Value::string("X")}, {"bos_token", Value::string("B")}}),
            "BFalseX<e>");
  EXPECT_FALSE(ct->apply(Value::string("not a list"), false).ok());
}

TEST(ChatTemplate, BadTemplatesFailWithLineNumbers) {
  auto ct =
      ChatTemplate::from_source("{% for m in messages %}\n{{ m | wordwrap }}{% endfor %}", "", "");
  ASSERT_FALSE(ct.ok());
  EXPECT_EQ(ct.message(),
            "chat template: template line 2, column 8: unsupported filter 'wordwrap'");
  auto ok = ChatTemplate::from_source("{{ raise_exception('no ' ~ messages|length) }}", "", "");
  ASSERT_TRUE(ok.ok());
  auto r = ok->apply(Value::list({}), false);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.message(), "chat template: template line 1: no 0");
}

TEST(ChatTemplate, MetadataWithoutTemplateGetsChatML) {
  Metadata md;
  md.set("tokenizer.ggml.tokens", gguf::Value::of_strings({"<unk>", "<s>", "</s>"}));
  md.set("tokenizer.ggml.bos_token_id", gguf::Value::of_u32(1));
  md.set("tokenizer.ggml.eos_token_id", gguf::Value::of_u32(2));
  std::string warning;
  auto ct = ChatTemplate::from_gguf(md, &warning);
  ASSERT_TRUE(ct.ok()) << ct.message();
  EXPECT_EQ(warning, "model has no chat template; using ChatML");
  EXPECT_EQ(ct->source(), kChatMLTemplate);
  EXPECT_EQ(ct->bos_token(), "<s>");
  EXPECT_EQ(ct->eos_token(), "</s>");

  md.set("tokenizer.chat_template",
         gguf::Value::of_string("{{ bos_token }}|{{ messages|length }}"));
  md.set("tokenizer.chat_template.tool_use", gguf::Value::of_string("tools:{{ tools|length }}"));
  warning.clear();
  ct = ChatTemplate::from_gguf(md, &warning);
  ASSERT_TRUE(ct.ok()) << ct.message();
  EXPECT_EQ(warning, "");
  EXPECT_EQ(*ct->apply(Value::list({}), false), "<s>|0");
  EXPECT_EQ(*ct->apply(Value::list({}), false, Value::list({Value::object({})})), "tools:1");

  md.set("tokenizer.chat_template", gguf::Value::of_u32(3));
  EXPECT_EQ(ChatTemplate::from_gguf(md, &warning).message(),
            "key tokenizer.chat_template: expected string, found u32");
}

TEST(ChatTemplate, SmolLM2TemplateFromTheModel) {
  KILN_REQUIRE_MODEL(path, "smollm2");
  auto f = GgufFile::open(path);
  ASSERT_TRUE(f.ok()) << f.message();
  std::string warning;
  auto ct = ChatTemplate::from_gguf((*f)->metadata(), &warning);
  ASSERT_TRUE(ct.ok()) << ct.message();
  EXPECT_EQ(warning, "");
  EXPECT_EQ(ct->source(), test::read_file(templates_dir() + "/smollm2.jinja"));
  EXPECT_EQ(ct->bos_token(), "<|im_start|>");
  EXPECT_EQ(ct->eos_token(), "<|im_end|>");
}

TEST(ChatTemplate, Gemma3FileHasNoTemplate) {
  KILN_REQUIRE_MODEL(path, "gemma3");
  auto f = GgufFile::open(path);
  ASSERT_TRUE(f.ok()) << f.message();
  std::string warning;
  auto ct = ChatTemplate::from_gguf((*f)->metadata(), &warning);
  ASSERT_TRUE(ct.ok()) << ct.message();
  EXPECT_EQ(warning, "model has no chat template; using ChatML");
  EXPECT_EQ(ct->bos_token(), "<bos>");
  EXPECT_EQ(ct->eos_token(), "<eos>");
}

std::string golden_output(const std::string& tmpl, const std::string& conv, bool agp) {
  for (const Json& g : read_json(templates_dir() + "/goldens/" + tmpl + ".json"))
    if (g["conversation"] == conv && g["add_generation_prompt"] == agp) return g["output"];
  return "";
}

TEST(ChatTemplate, CommandPrintsThePrompt) {
  KILN_REQUIRE_MODEL(path, "smollm2");
  std::string conv = templates_dir() + "/conversations/multi_turn.json";
  auto r = test::run_kiln("template " + path + " --messages " + conv + " --add-generation-prompt");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, golden_output("smollm2", "multi_turn", true));
  r = test::run_kiln("template " + path + " --messages " + conv);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, golden_output("smollm2", "multi_turn", false));

  // A bare messages array works too, and errors are reported with the template's message.
  std::string arr = test::temp_dir() + "/messages.json";
  std::FILE* fp = std::fopen(arr.c_str(), "w");
  std::fputs("[{\"role\": \"user\", \"content\": null}]", fp);
  std::fclose(fp);
  r = test::run_kiln("template " + path + " --messages " + arr);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("kiln template: error: chat template: template line 4: unsupported operand "
                       "type(s) for +: 'str' and 'NoneType'"),
            std::string::npos)
      << r.err;
  r = test::run_kiln("template " + path + " --messages /nonexistent.json");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("/nonexistent.json"), std::string::npos) << r.err;
}

TEST(ChatTemplate, CommandWithToolsFile) {
  KILN_REQUIRE_MODEL(path, "gemma3");
  std::string conv = templates_dir() + "/conversations/tools_no_call.json";
  auto r = test::run_kiln("template " + path + " --messages " + conv);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("model has no chat template; using ChatML"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, golden_output("chatml", "tools_no_call", false));
  std::string tools = test::temp_dir() + "/tools.json";
  std::FILE* fp = std::fopen(tools.c_str(), "w");
  std::fputs("[{\"type\": \"function\", \"function\": {\"name\": \"f\"}}]", fp);
  std::fclose(fp);
  r = test::run_kiln("template " + path + " --messages " + conv + " --tools " + tools);
  ASSERT_EQ(r.exit_code, 0) << r.err;
}

}  // namespace
}  // namespace kiln::gguf
