// A model's chat template (GGUF key tokenizer.chat_template): turns a conversation into the
// prompt text the model was trained on, rendered by kiln's Jinja interpreter exactly as Hugging
// Face transformers' apply_chat_template renders it with Python's jinja2 (see
// tests/data/templates/README.md for the environment and the known differences).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "frontends/gguf/gguf_value.h"
#include "frontends/gguf/jinja_template.h"
#include "frontends/gguf/jinja_value.h"
#include "ir/status.h"

namespace kiln::gguf {

struct ChatMessage {
  std::string role;
  std::string content;
  // Other fields of the message as a dict (tool_calls, tool_call_id, name, or a list-valued
  // "content" for multimodal parts); its entries override role and content. Undefined: none.
  jinja::Value extra;
};

// The messages as the list of dicts templates index (message['role'], message.content, ...).
jinja::Value messages_to_value(const std::vector<ChatMessage>& messages);

// Hugging Face's default ChatML template, used for models that have none.
extern const char* const kChatMLTemplate;

class ChatTemplate {
 public:
  // The model's template and its BOS/EOS token texts (tokenizer.ggml.tokens[bos/eos id]). A
  // model without a template gets ChatML and *warning is set to
  // "model has no chat template; using ChatML". A tokenizer.chat_template.tool_use template,
  // when present, is used for calls that pass tools.
  static Result<ChatTemplate> from_gguf(const Metadata& md, std::string* warning);
  static Result<ChatTemplate> from_source(std::string source, std::string bos_token,
                                          std::string eos_token);

  // Renders `messages` (a list of message dicts). `tools` is a list of tool schemas, or
  // none/undefined for no tools; `extra` adds template variables (date_string,
  // tools_in_user_message, documents, ...), replacing the standard ones of the same name.
  Result<std::string> apply(
      const jinja::Value& messages, bool add_generation_prompt,
      const jinja::Value& tools = jinja::Value(),
      const std::vector<std::pair<std::string, jinja::Value>>& extra = {}) const;
  Result<std::string> apply(const std::vector<ChatMessage>& messages,
                            bool add_generation_prompt) const;

  const std::string& source() const { return source_; }
  const std::string& bos_token() const { return bos_; }
  const std::string& eos_token() const { return eos_; }
  // Render limits and the time strftime_now() sees (tests pin it).
  void set_render_options(const jinja::RenderOptions& options) { options_ = options; }

 private:
  std::string source_, bos_, eos_;
  jinja::Template template_;
  std::string tool_use_source_;
  jinja::Template tool_use_template_;
  bool has_tool_use_ = false;
  jinja::RenderOptions options_;
};

}  // namespace kiln::gguf
