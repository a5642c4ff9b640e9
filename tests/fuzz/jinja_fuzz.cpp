// libFuzzer target over the Jinja interpreter: the input is template source. Whatever it is,
// parsing must return (an error names a line), and a template that parses must render a fixed
// conversation (messages with tool calls, tools, odd values) to text or to an error that names
// a line, within tight step and output budgets: no crash, hang, leak or giant allocation.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "frontends/gguf/jinja_template.h"

namespace {

using kiln::jinja::RenderOptions;
using kiln::jinja::Template;
using kiln::jinja::Value;

Value conversation() {
  auto msg = [](const char* role, Value content) {
    return Value::object({{"role", Value::string(role)}, {"content", std::move(content)}});
  };
  Value call = Value::object(
      {{"id", Value::string("call00001")},
       {"type", Value::string("function")},
       {"function",
        Value::object({{"name", Value::string("get_weather")},
                       {"arguments", Value::object({{"location", Value::string("Paris")}})}})}});
  Value assistant_call = Value::object({{"role", Value::string("assistant")},
                                        {"content", Value::none()},
                                        {"tool_calls", Value::list({call})}});
  Value messages = Value::list({
      msg("system", Value::string("You are helpful.")),
      msg("user", Value::string("Hi <|im_start|> \xe2\x80\x94 \xf0\x9f\x98\x80 {{ x }}")),
      assistant_call,
      msg("tool", Value::string("{\"t\": 22}")),
      msg("assistant", Value::string("<think>\nhm\n</think>\n\nIt is 22.")),
      msg("user", Value::list({Value::object(
                      {{"type", Value::string("text")}, {"text", Value::string(" parts ")}})})),
  });
  Value tools = Value::list({Value::object(
      {{"type", Value::string("function")},
       {"function",
        Value::object({{"name", Value::string("get_weather")},
                       {"parameters", Value::object({{"type", Value::string("object")}})}})}})});
  return Value::object({{"messages", messages},
                        {"tools", tools},
                        {"add_generation_prompt", Value::boolean(true)},
                        {"bos_token", Value::string("<s>")},
                        {"eos_token", Value::string("</s>")},
                        {"n", Value::integer(-3)},
                        {"f", Value::number(2.5)},
                        {"nothing", Value::none()}});
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 64 * 1024) return 0;
  static const Value context = conversation();
  std::string_view source(reinterpret_cast<const char*>(data), size);
  auto t = Template::parse(source);
  if (!t.ok()) {
    if (t.message().rfind("template line ", 0) != 0) std::abort();  // errors say where
    return 0;
  }
  RenderOptions o;
  o.limits.max_steps = 200000;
  o.limits.max_output_bytes = 1 << 20;
  std::tm fixed{};
  fixed.tm_year = 124;
  fixed.tm_mday = 1;
  o.fixed_time = fixed;
  auto r = t->render(context, o);
  if (r.ok()) {
    if (r->size() > o.limits.max_output_bytes) std::abort();
  } else if (r.message().rfind("template", 0) != 0) {
    std::abort();
  }
  return 0;
}
