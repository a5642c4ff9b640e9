// `kiln compile MODEL.gguf -o MODEL.kiln`: ahead-of-time compilation to one artifact
// (docs/artifact.md). The artifact runs anywhere a GGUF is accepted (run, chat, bench, the C++
// API) with no compilation at load.
#include <cstdio>
#include <sstream>

#include "runtime/artifact_writer.h"
#include "tools/command.h"

namespace kiln::tools {
namespace {

struct CompileArgs {
  std::string model, out, target = "host", kv = "f16", weights = "embed", buckets = "8,32,128,512";
  std::string pipeline = "canonicalize,merge-parallel-matmuls,fuse,plan-memory";
  std::string batch = "1";
  int ctx = 0;
  bool no_microkernels = false, quiet = false;
};

int compile(const CompileArgs& a) {
  artifact::CompileOptions o;
  o.target = a.target;
  o.ctx = a.ctx;
  o.pipeline = a.pipeline;
  o.microkernels = !a.no_microkernels;
  if (a.kv == "f16")
    o.kv_type = DType::F16;
  else if (a.kv == "q8_0")
    o.kv_type = DType::Q8_0;
  else
    return fail("compile", "--kv must be f16 or q8_0, found '" + a.kv + "'");
  if (a.weights != "embed" && a.weights != "reference")
    return fail("compile", "--weights must be embed or reference, found '" + a.weights + "'");
  o.embed_weights = a.weights == "embed";
  // Comma-separated positive numbers.
  auto numbers = [](const std::string& flag, const std::string& text,
                    std::vector<int>* out) -> bool {
    out->clear();
    std::stringstream ss(text);
    for (std::string item; std::getline(ss, item, ',');) {
      if (item.empty()) continue;
      if (item.size() > 7 || item.find_first_not_of("0123456789") != std::string::npos) {
        fail("compile", flag + ": '" + item + "' is not a number");
        return false;
      }
      out->push_back(std::stoi(item));
    }
    return true;
  };
  if (!numbers("--prefill-buckets", a.buckets, &o.prefill_buckets)) return 1;
  if (!numbers("--batch", a.batch, &o.batches)) return 1;
  auto r = artifact::compile_artifact(a.model, a.out, o);
  if (!r.ok()) return fail("compile", r.message());
  if (!a.quiet) {
    for (const artifact::GraphReport& g : r->graphs)
      std::fprintf(stderr,
                   "kiln compile: %-14s %4zu kernels, %8llu bytes of code; lower %.3f s, passes "
                   "%.3f s, codegen %.3f s\n",
                   g.name.c_str(), g.kernels, (unsigned long long)g.object_bytes, g.lower_seconds,
                   g.passes_seconds, g.codegen_seconds);
    std::string feats;
    for (const std::string& f : r->required_features) feats += (feats.empty() ? "" : ",") + f;
    for (int arch : r->cuda_archs)
      feats += (feats.empty() ? "CUDA sm_" : ", sm_") + std::to_string(arch);
    const std::string weights = a.weights == "embed"
                                    ? "embed, " + std::to_string(r->embedded_tensors) + " tensors"
                                    : a.weights;
    std::fprintf(stderr,
                 "kiln compile: wrote %s (%llu bytes, target %s, weights %s) in %.2f s "
                 "(sha256 %.2f s, constants %.2f s for %llu bytes, write %.2f s); needs %s%s\n",
                 a.out.c_str(), (unsigned long long)r->file_bytes, r->target.c_str(),
                 weights.c_str(), r->seconds, r->hash_seconds, r->constants_seconds,
                 (unsigned long long)r->constant_bytes, r->write_seconds,
                 r->cuda_archs.empty() ? "CPU features: " : "",
                 feats.empty() ? "(none)" : feats.c_str());
  }
  return 0;
}

}  // namespace

KILN_REGISTER_COMMAND(
    compile,
    Command{"compile", "Compile a GGUF model ahead of time into one .kiln artifact", 15,
            [](CLI::App& app) -> std::function<int()> {
              auto a = std::make_shared<CompileArgs>();
              app.add_option("model", a->model, "GGUF model file")->required();
              app.add_option("-o,--output", a->out, "Artifact to write (MODEL.kiln)")->required();
              app.add_option("--target", a->target,
                             "host, x86-64-v3, x86-64-v4, aarch64, TRIPLE[:CPU[:FEATURES]], or "
                             "cuda:sm_80[,sm_90...] (PTX and cubins for a GPU)")
                  ->capture_default_str();
              app.add_option("-c,--ctx", a->ctx, "KV-cache length (0: min(model, 4096))")
                  ->capture_default_str();
              app.add_option("--batch", a->batch,
                             "Decode graphs for these numbers of sequences (1,4: batches of up "
                             "to 4 prompts decode together)")
                  ->capture_default_str();
              app.add_option("--prefill-buckets", a->buckets,
                             "Prefill graph lengths, comma-separated")
                  ->capture_default_str();
              app.add_option("--kv", a->kv, "KV-cache type: f16 or q8_0")->capture_default_str();
              app.add_option("--weights", a->weights,
                             "embed (in the artifact) or reference (the GGUF by path + sha256)")
                  ->capture_default_str();
              app.add_option("--pipeline", a->pipeline, "Pass pipeline (must end with plan-memory)")
                  ->capture_default_str();
              app.add_flag("--no-microkernels", a->no_microkernels,
                           "x86-64: LLVM dot products instead of the xbyak microkernels");
              app.add_flag("-q,--quiet", a->quiet, "No report on stderr");
              return [a] { return compile(*a); };
            }});

}  // namespace kiln::tools
