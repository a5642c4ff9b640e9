// kiln-gpu-check's entry (runtime/cuda_check.cpp, run by scripts/gpu-check): compiles every CUDA
// kernel of the models given, checks them against the reference interpreter, compares decode
// logits with the CPU path and times decode and prefill. Exit 0: passed; 1: a check failed;
// 2: no CUDA device (only the compile step ran). `--emulate` uses the CPU emulator (tests).
#pragma once

namespace kiln::runtime {

int gpu_check_main(int argc, char** argv);

}  // namespace kiln::runtime
