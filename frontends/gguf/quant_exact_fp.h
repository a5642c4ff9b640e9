// Include FIRST in every reference-quant .cpp (before any other header): turns off contraction
// of a*b+c into fused multiply-adds for the whole translation unit. ggml's reference code rounds
// every product and sum separately; a fused multiply-add (GCC contracts across statements by
// default in C++, even with -std=c++20, as soon as the target has FMA, e.g. KILN_NATIVE=ON)
// would change the last bit of dequantized values and flip the K-quant scale searches.
#pragma once

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
