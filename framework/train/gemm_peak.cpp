#include "framework/train/gemm_peak.h"

#include <ATen/ops/mm.h>
#include <ATen/ops/full.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <string>
#include <utility>

namespace attnlab {

double measured_gemm_flops(c10::Device device, c10::ScalarType dtype) {
  // Once per process and (device, dtype): tests build many trainers.
  static std::map<std::pair<std::string, int>, double> measured;
  const auto key = std::make_pair(device.str(), static_cast<int>(dtype));
  if (auto it = measured.find(key); it != measured.end()) return it->second;
  const int64_t n = device.is_cuda() ? 8192 : 1024;
  const auto opts = at::TensorOptions().device(device).dtype(dtype);
  // Constant operands: the timing does not depend on the values, and the global generator (which
  // seeds the model, the data order and mixers' draws) must not move.
  const at::Tensor a = at::full({n, n}, 0.5, opts), b = at::full({n, n}, 0.25, opts);
  at::Tensor c = at::mm(a, b);
  (void)c[0][0].item<double>();  // warm-up, and on CUDA a synchronisation
  double best = 1e30;
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    c = at::mm(a, b);
    (void)c[0][0].item<double>();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return measured[key] = 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n) / best;
}

}  // namespace attnlab
