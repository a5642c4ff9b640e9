# Optional dependencies: each KILN_WITH_X defaults to ON when X is found.
find_package(Threads REQUIRED)

# LLVM (ORC JIT and object emission for the CPU backend).
find_package(LLVM ${KILN_LLVM_VERSION} CONFIG QUIET
             HINTS /usr/lib/llvm-${KILN_LLVM_VERSION}/lib/cmake/llvm)
if(NOT LLVM_FOUND)
  find_package(LLVM CONFIG QUIET)
endif()
set(_kiln_llvm_default OFF)
if(LLVM_FOUND)
  set(_kiln_llvm_default ON)
endif()
option(KILN_WITH_LLVM "Build the LLVM code generator" ${_kiln_llvm_default})
if(KILN_WITH_LLVM AND NOT LLVM_FOUND)
  message(FATAL_ERROR "KILN_WITH_LLVM=ON but LLVM was not found (run scripts/setup)")
endif()

# xbyak (header-only JIT assembler for x86-64 microkernels).
find_path(XBYAK_INCLUDE_DIR xbyak/xbyak.h)
set(_kiln_xbyak_default OFF)
if(XBYAK_INCLUDE_DIR AND CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64")
  set(_kiln_xbyak_default ON)
endif()
option(KILN_WITH_XBYAK "Build the xbyak x86-64 microkernels" ${_kiln_xbyak_default})

# CUDA: we only need NVRTC's and the driver API's headers at build time; both libraries are
# opened with dlopen at run time, so nothing links against them.
find_path(CUDA_INCLUDE_DIR cuda.h HINTS /usr/local/cuda/include)
find_path(NVRTC_INCLUDE_DIR nvrtc.h HINTS /usr/local/cuda/include)
set(_kiln_cuda_default OFF)
if(CUDA_INCLUDE_DIR AND NVRTC_INCLUDE_DIR)
  set(_kiln_cuda_default ON)
endif()
option(KILN_WITH_CUDA "Build the CUDA backend (NVRTC + driver API, dlopen'ed)" ${_kiln_cuda_default})

# Optional front-end libraries for the CLI and the server.
find_package(GTest QUIET)
find_package(benchmark QUIET)
if(KILN_BUILD_TESTS AND NOT GTest_FOUND)
  message(FATAL_ERROR "GoogleTest not found (run scripts/setup)")
endif()
if(KILN_BUILD_BENCH AND NOT benchmark_FOUND)
  message(WARNING "Google Benchmark not found: bench/ is skipped")
  set(KILN_BUILD_BENCH OFF)
endif()

message(STATUS "kiln: LLVM=${KILN_WITH_LLVM} (${LLVM_PACKAGE_VERSION}) XBYAK=${KILN_WITH_XBYAK} "
               "CUDA=${KILN_WITH_CUDA} sanitize=${KILN_SANITIZE} fuzz=${KILN_FUZZ}")
