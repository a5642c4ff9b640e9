# Build options. The heavy dependencies are ON when found, and every one can be turned OFF.
option(KILN_BUILD_TESTS "Build the GoogleTest suite" ON)
option(KILN_BUILD_BENCH "Build the Google Benchmark micro-benchmarks" ON)
option(KILN_SANITIZE "Build with AddressSanitizer and UndefinedBehaviorSanitizer" OFF)
option(KILN_FUZZ "Build libFuzzer targets (needs clang)" OFF)
option(KILN_NATIVE "Compile our own C++ for the build host's CPU (-march=native)" OFF)
set(KILN_LLVM_VERSION 19 CACHE STRING "LLVM major version to look for first")

# Warnings as errors for our own code only (set per target in kiln_add_library).
set(KILN_WARNINGS -Wall -Wextra -Wpedantic -Werror -Wno-unused-parameter)
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  # GCC 12 reports false positives inside libstdc++'s std::string at -O3 (GCC bug 105329).
  list(APPEND KILN_WARNINGS -Wno-restrict -Wno-stringop-overflow -Wno-array-bounds)
endif()
if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  list(APPEND KILN_WARNINGS -Wno-c99-extensions -Wno-gnu-zero-variadic-macro-arguments)
endif()

if(KILN_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=undefined
                      -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
  if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    # UBSan's `function` check reads a type hash from the 8 bytes before every function called
    # through a pointer. JIT-compiled kernels have no such prologue, and one that starts a page
    # makes the check itself fault.
    add_compile_options(-fno-sanitize=function)
  endif()
endif()
if(KILN_FUZZ)
  # Coverage instrumentation in every library, so the fuzzers see inside the code they test.
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()
if(KILN_NATIVE)
  add_compile_options(-march=native)
endif()
