// `kiln tokenize MODEL "text" [--ids-only] [--special] [--no-bos] [-f FILE]`: the token ids
// of a text under the model's own tokenizer, with the piece of each id.
#include <cstdio>
#include <fstream>
#include <sstream>

#include "frontends/gguf/gguf_file.h"
#include "frontends/gguf/tokenizer.h"
#include "tools/command.h"

namespace kiln::tools {
namespace {

// A piece for one line: valid UTF-8 stays, control characters and stray bytes are escaped.
std::string printable(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    char buf[8];
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (c < 0x20 || c == 0x7F) {
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else if (c >= 0x80) {
      size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
      bool ok = n > 0 && i + n <= s.size();
      for (size_t k = 1; ok && k < n; ++k) ok = (s[i + k] & 0xC0) == 0x80;
      if (ok) {
        out.append(s, i, n);
        i += n;
        continue;
      }
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += char(c);
    }
    ++i;
  }
  return out;
}

int run_tokenize(const std::string& model, const std::string& text_arg, const std::string& file,
                 bool ids_only, bool special, bool no_bos) {
  std::string text = text_arg;
  if (!file.empty()) {
    std::ifstream in(file, std::ios::binary);
    if (!in) return fail("tokenize", "cannot read '" + file + "'");
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  }
  auto f = gguf::GgufFile::open(model);
  if (!f.ok()) return fail("tokenize", f.message());
  auto tok = gguf::Tokenizer::from_gguf((*f)->metadata());
  if (!tok.ok()) return fail("tokenize", model + ": " + tok.message());
  auto ids = (*tok)->encode(text, !no_bos, special);
  if (!ids.ok()) return fail("tokenize", ids.message());
  if (ids_only) {
    std::string line;
    for (size_t i = 0; i < ids->size(); ++i) line += (i ? " " : "") + std::to_string((*ids)[i]);
    std::printf("%s\n", line.c_str());
    return 0;
  }
  for (int32_t id : *ids)
    std::printf("%6d -> '%s'\n", id, printable((*tok)->piece(id, true)).c_str());
  std::printf("%zu tokens\n", ids->size());
  return 0;
}

}  // namespace

KILN_REGISTER_COMMAND(
    tokenize,
    Command{"tokenize", "Show the token ids and pieces of a text under a model's tokenizer", 40,
            [](CLI::App& app) -> std::function<int()> {
              auto model = std::make_shared<std::string>();
              auto text = std::make_shared<std::string>();
              auto file = std::make_shared<std::string>();
              auto ids_only = std::make_shared<bool>(false);
              auto special = std::make_shared<bool>(false);
              auto no_bos = std::make_shared<bool>(false);
              app.add_option("model", *model, "GGUF model file")->required();
              auto* t = app.add_option("text", *text, "Text to tokenize");
              auto* f = app.add_option("-f,--file", *file, "Read the text from a file");
              t->excludes(f);
              app.add_flag("--ids-only", *ids_only,
                           "Print only the ids, space-separated, on one line");
              app.add_flag("--special", *special,
                           "Turn special-token text such as <|im_start|> into tokens");
              app.add_flag("--no-bos", *no_bos,
                           "Do not add BOS/EOS even where the model asks for them");
              return [=] {
                if (t->count() == 0 && f->count() == 0)
                  return fail("tokenize", "give a text or -f FILE");
                return run_tokenize(*model, *text, *file, *ids_only, *special, *no_bos);
              };
            }});

}  // namespace kiln::tools
