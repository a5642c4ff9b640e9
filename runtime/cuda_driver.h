// The real CUDA device: libcuda.so.1 opened with dlopen at run time (never linked, so the same
// binary starts on machines without a driver), device 0 (or $KILN_CUDA_DEVICE), its primary
// context and one non-blocking stream.
#pragma once

#include <memory>
#include <string>

#include "runtime/cuda_device.h"

namespace kiln::runtime {

// Why CUDA cannot be used here, in one line, or Ok. Loads the driver (or `library`, for tests:
// a path that does not exist gives the dlopen message), initializes it and looks for a device.
// The result for the default library is computed once and cached.
Status cuda_status(const std::string& library = "");

// The one line kiln prints when it falls back to the CPU: "CUDA unavailable (...): running on
// the CPU". `--device cuda` fails with cuda_status()'s message instead.
std::string cuda_fallback_message(const Status& why);

// Opens the device (after cuda_status() is Ok).
Result<std::unique_ptr<CudaDevice>> open_cuda_device();

}  // namespace kiln::runtime
