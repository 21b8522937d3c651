// What the GPU check programs (linear_check, attention_check, titans_check) share: a device sync, the error
// measure they compare with tolerances, and a timer that waits for the device.
#pragma once
#include <ATen/core/Tensor.h>
#include <ATen/TensorOperators.h>
#include <c10/core/Device.h>

#include "tools/common/median_time.h"

#ifdef ATTNLAB_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace attnlab::gpu_check {

inline void sync(const at::Device& d) {
#ifdef ATTNLAB_WITH_CUDA
  if (d.is_cuda()) cudaDeviceSynchronize();
#endif
  (void)d;
}

/// RMS error relative to the reference's RMS; absolute where the reference is zero (the key
/// gradients of a softmax over one key are exactly 0).
inline double rel_rms(const at::Tensor& ref, const at::Tensor& got) {
  at::Tensor r = ref.detach().cpu().to(at::kDouble), g = got.detach().cpu().to(at::kDouble);
  const double scale = r.pow(2).mean().sqrt().item<double>();
  return (g - r).pow(2).mean().sqrt().item<double>() / (scale > 1e-10 ? scale : 1.0);
}

/// Median ms of f() on `device`, synchronising after every call.
template <class F>
double time_ms(const at::Device& device, F&& f, int reps) {
  return tools::median_ms([&] { f(); sync(device); }, reps);
}

}  // namespace attnlab::gpu_check
