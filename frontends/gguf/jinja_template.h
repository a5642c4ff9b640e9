// A Jinja template as chat templates use it: kiln's own interpreter of the jinja2 subset that
// Hugging Face transformers renders chat templates with (ImmutableSandboxedEnvironment with
// trim_blocks and lstrip_blocks, loop controls, raise_exception and strftime_now). Parsing and
// rendering return errors that name the template line (and column, for syntax errors); a
// template can neither hang nor exhaust memory: steps, output size and nesting are bounded.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "frontends/gguf/jinja_interp.h"
#include "frontends/gguf/jinja_value.h"
#include "ir/status.h"

namespace kiln::jinja {

struct Program;

class Template {
 public:
  // "template line 3, column 7: unexpected '}'", "template line 2: unsupported filter 'x'".
  static Result<Template> parse(std::string_view source);
  // Renders with the variables of `context` (a dict with string keys).
  Result<std::string> render(const Value& context, const RenderOptions& options = {}) const;

 private:
  std::shared_ptr<const Program> program_;
};

}  // namespace kiln::jinja
