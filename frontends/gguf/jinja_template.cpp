#include "frontends/gguf/jinja_template.h"

#include <new>

#include "frontends/gguf/jinja_parser.h"

namespace kiln::jinja {
namespace {

Error to_error(const Failure& f) {
  std::string where = "template line " + std::to_string(f.line);
  if (f.column > 0) where += ", column " + std::to_string(f.column);
  return Error(where + ": " + f.message);
}

}  // namespace

Result<Template> Template::parse(std::string_view source) {
  try {
    Template t;
    t.program_ = parse_program(source);
    return t;
  } catch (const Failure& f) {
    return to_error(f);
  } catch (const std::bad_alloc&) {
    return Error("template: out of memory while parsing");
  }
}

Result<std::string> Template::render(const Value& context, const RenderOptions& options) const {
  if (!program_) return Error("template: render of an empty Template");
  if (context.depth() > kMaxValueDepth + 1)
    return Error("template: input values nested more than " + std::to_string(kMaxValueDepth) +
                 " levels deep");
  try {
    Interp in(options);
    return in.render(*program_, context);
  } catch (const Failure& f) {
    return to_error(f);
  } catch (const std::bad_alloc&) {
    return Error("template: out of memory while rendering");
  } catch (const std::length_error&) {
    return Error("template: string too long");
  }
}

}  // namespace kiln::jinja
