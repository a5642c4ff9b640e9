#include "frontends/gguf/chat_template.h"

namespace kiln::gguf {

const char* const kChatMLTemplate =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}";

namespace {

// The text of the token tokenizer.ggml.<which>_token_id names, or "" when there is none.
std::string special_token(const Metadata& md, const std::string& which) {
  auto id = md.get_uint("tokenizer.ggml." + which + "_token_id");
  if (!id.ok()) return "";
  auto tokens = md.get_string_array("tokenizer.ggml.tokens");
  if (!tokens.ok() || *id >= (*tokens)->size()) return "";
  return (**tokens)[*id];
}

}  // namespace

jinja::Value messages_to_value(const std::vector<ChatMessage>& messages) {
  std::vector<jinja::Value> list;
  list.reserve(messages.size());
  for (const ChatMessage& m : messages) {
    std::vector<std::pair<jinja::Value, jinja::Value>> entries = {
        {jinja::Value::string("role"), jinja::Value::string(m.role)},
        {jinja::Value::string("content"), jinja::Value::string(m.content)}};
    if (m.extra.is_mapping())
      for (const auto& kv : m.extra.dict_data().entries) entries.push_back(kv);
    list.push_back(jinja::Value::dict(std::move(entries)));
  }
  return jinja::Value::list(std::move(list));
}

Result<ChatTemplate> ChatTemplate::from_source(std::string source, std::string bos_token,
                                               std::string eos_token) {
  auto t = jinja::Template::parse(source);
  if (!t.ok()) return t.error().wrap("chat template");
  ChatTemplate ct;
  ct.source_ = std::move(source);
  ct.bos_ = std::move(bos_token);
  ct.eos_ = std::move(eos_token);
  ct.template_ = std::move(*t);
  return ct;
}

Result<ChatTemplate> ChatTemplate::from_gguf(const Metadata& md, std::string* warning) {
  std::string bos = special_token(md, "bos"), eos = special_token(md, "eos");
  const Value* v = md.find("tokenizer.chat_template");
  if (!v) {
    if (warning) *warning = "model has no chat template; using ChatML";
    return from_source(kChatMLTemplate, bos, eos);
  }
  if (v->type != Type::STRING)
    return Error("key tokenizer.chat_template: expected string, found " + v->describe());
  KILN_ASSIGN_OR_RETURN(ChatTemplate ct, from_source(v->s, bos, eos));
  if (const Value* tu = md.find("tokenizer.chat_template.tool_use");
      tu && tu->type == Type::STRING) {
    auto t = jinja::Template::parse(tu->s);
    if (!t.ok()) return t.error().wrap("tool_use chat template");
    ct.tool_use_source_ = tu->s;
    ct.tool_use_template_ = std::move(*t);
    ct.has_tool_use_ = true;
  }
  return ct;
}

Result<std::string> ChatTemplate::apply(
    const jinja::Value& messages, bool add_generation_prompt, const jinja::Value& tools,
    const std::vector<std::pair<std::string, jinja::Value>>& extra) const {
  if (!messages.is_list()) return Error("chat template: messages must be a list");
  bool has_tools = tools.is_list() && !tools.items().empty();
  if (!tools.is_undefined() && !tools.is_none() && !tools.is_list())
    return Error("chat template: tools must be a list");
  // What transformers' apply_chat_template passes to the template.
  std::vector<std::pair<std::string, jinja::Value>> vars = {
      {"messages", messages},
      {"tools", tools.is_list() ? tools : jinja::Value::none()},
      {"documents", jinja::Value::none()},
      {"add_generation_prompt", jinja::Value::boolean(add_generation_prompt)},
      {"bos_token", jinja::Value::string(bos_)},
      {"eos_token", jinja::Value::string(eos_)},
  };
  for (const auto& [k, v] : extra) {
    bool replaced = false;
    for (auto& var : vars)
      if (var.first == k) var.second = v, replaced = true;
    if (!replaced) vars.emplace_back(k, v);
  }
  const jinja::Template& t = has_tools && has_tool_use_ ? tool_use_template_ : template_;
  auto out = t.render(jinja::Value::object(std::move(vars)), options_);
  if (!out.ok()) return out.error().wrap("chat template");
  return out;
}

Result<std::string> ChatTemplate::apply(const std::vector<ChatMessage>& messages,
                                        bool add_generation_prompt) const {
  return apply(messages_to_value(messages), add_generation_prompt);
}

}  // namespace kiln::gguf
