#include "tests/support/tiny_model.h"

#include <gtest/gtest.h>

#include <fstream>

#include "frontends/gguf/make_model.h"
#include "frontends/gguf/model_presets.h"
#include "tests/support/test_support.h"

namespace kiln::test {

TinyModel make_tiny_model(const std::string& preset, DType quant, uint32_t seed, bool write) {
  TinyModel m;
  const gguf::ModelPreset* p = gguf::find_preset(preset);
  EXPECT_TRUE(p) << preset;
  if (!p) return m;
  gguf::MakeModelOptions opt;
  opt.quant = quant;
  opt.seed = seed;
  opt.threads = 2;
  auto w = gguf::make_model(*p, opt);
  EXPECT_TRUE(w.ok()) << w.message();
  if (!w.ok()) return m;
  EXPECT_TRUE(w->to_bytes(&m.bytes).ok());
  if (write) {
    m.path = temp_dir() + "/" + preset + "-" + std::string(dtype_name(quant)) + ".gguf";
    std::ofstream(m.path, std::ios::binary)
        .write(reinterpret_cast<const char*>(m.bytes.data()), std::streamsize(m.bytes.size()));
  }
  auto f = gguf::GgufFile::parse(m.bytes, preset + ".gguf");
  EXPECT_TRUE(f.ok()) << f.message();
  if (f.ok()) m.file = std::move(*f);
  return m;
}

}  // namespace kiln::test
