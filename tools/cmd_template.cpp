// `kiln template MODEL --messages conv.json [--add-generation-prompt] [--tools tools.json]`:
// prints the prompt the model's chat template makes of a conversation, byte for byte (no
// newline is added). conv.json is an OpenAI-style messages array, or an object with
// "messages", optional "tools" and optional "kwargs" (extra template variables).
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "frontends/gguf/chat_template.h"
#include "frontends/gguf/gguf_file.h"
#include "frontends/gguf/jinja_from_json.h"
#include "tools/command.h"

namespace kiln::tools {
namespace {

using Json = nlohmann::ordered_json;  // keeps key order, which tojson output depends on
using jinja::Value;

Result<Json> read_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error(path + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  // nlohmann's parser recurses per nesting level; refuse absurd nesting before parsing.
  int depth = 0, max_depth = 0;
  bool in_string = false, escaped = false;
  for (char c : ss.str()) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      max_depth = std::max(max_depth, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  if (max_depth > jinja::kMaxValueDepth) return Error(path + ": JSON nested too deeply");
  Json j = Json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Error(path + ": not valid JSON");
  return j;
}

int run_template(const std::string& model, const std::string& messages_path, bool agp,
                 const std::string& tools_path) {
  auto file = gguf::GgufFile::open(model);
  if (!file.ok()) return fail("template", file.message());
  std::string warning;
  auto ct = gguf::ChatTemplate::from_gguf((*file)->metadata(), &warning);
  if (!ct.ok()) return fail("template", ct.message());
  if (!warning.empty()) std::fprintf(stderr, "kiln template: warning: %s\n", warning.c_str());

  auto conv = read_json(messages_path);
  if (!conv.ok()) return fail("template", conv.message());
  Json messages = *conv, tools;
  std::vector<std::pair<std::string, Value>> kwargs;
  if (conv->is_object()) {
    if (!conv->contains("messages"))
      return fail("template", messages_path + ": expected a \"messages\" array");
    messages = (*conv)["messages"];
    if (conv->contains("tools")) tools = (*conv)["tools"];
    if (conv->contains("kwargs") && (*conv)["kwargs"].is_object())
      for (auto it = (*conv)["kwargs"].begin(); it != (*conv)["kwargs"].end(); ++it)
        kwargs.emplace_back(it.key(), jinja::from_json(*it));
  }
  if (!messages.is_array()) return fail("template", messages_path + ": messages must be an array");
  if (!tools_path.empty()) {
    auto t = read_json(tools_path);
    if (!t.ok()) return fail("template", t.message());
    tools = *t;
  }
  if (!tools.is_null() && !tools.is_array())
    return fail("template", "tools must be a JSON array of tool schemas");

  auto prompt = ct->apply(jinja::from_json(messages), agp,
                          tools.is_null() ? Value() : jinja::from_json(tools), kwargs);
  if (!prompt.ok()) return fail("template", prompt.message());
  std::fwrite(prompt->data(), 1, prompt->size(), stdout);
  return 0;
}

}  // namespace

KILN_REGISTER_COMMAND(
    template,
    Command{
        "template", "Render a conversation with the model's chat template", 30,
        [](CLI::App& app) -> std::function<int()> {
          auto model = std::make_shared<std::string>();
          auto messages = std::make_shared<std::string>();
          auto tools = std::make_shared<std::string>();
          auto agp = std::make_shared<bool>(false);
          app.add_option("model", *model, "GGUF model file")->required();
          app.add_option("--messages", *messages,
                         "JSON file: a messages array, or {\"messages\", \"tools\", \"kwargs\"}")
              ->required();
          app.add_flag("--add-generation-prompt", *agp, "End with the assistant turn's opening");
          app.add_option("--tools", *tools, "JSON file with an array of tool schemas");
          return [=] { return run_template(*model, *messages, *agp, *tools); };
        }});

}  // namespace kiln::tools
