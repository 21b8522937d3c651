// The denominator of the MFU column: this machine's measured GEMM throughput (docs/benchmarks.md,
// "MFU"), not a datasheet peak: a square matmul in the training dtype, timed at start-up.
#pragma once
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

namespace attnlab {

/// FLOP/s of an n×n×n matmul on `device` in `dtype` (n = 1024 on CPU, 8192 on CUDA), the best of
/// a few runs after a warm-up; about 50 ms on 2 CPU cores.
double measured_gemm_flops(c10::Device device, c10::ScalarType dtype);

}  // namespace attnlab
