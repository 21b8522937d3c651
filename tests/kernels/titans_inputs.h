// Random memory inputs shared by the Titans kernel tests (titans_test.cpp, titans_fused_test.cpp).
#pragma once
#include <ATen/TensorOperators.h>
#include <ATen/ops/rand.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/randn_like.h>

#include <cmath>
#include <vector>

#include "kernels/titans/spec.h"

namespace attnlab::kernels::test_inputs {

constexpr int64_t B = 2, H = 3, d = 4;

struct Inputs {
  at::Tensor q, k, v, theta, alpha, eta;
  std::vector<at::Tensor> w0;
};

/// Random inputs of N tokens for an L-layer memory of widths d -> 2d -> ... -> d.
inline Inputs random_inputs(int64_t N, int64_t L) {
  Inputs in;
  auto o = at::kDouble;
  // Unit queries and keys, as the layer makes them, keep the inner steps stable (2θ‖k‖² < 2).
  auto unit = [](const at::Tensor& x) { return x / x.norm(2, -1, true); };
  in.q = unit(at::randn({B, H, N, d}, o)), in.k = unit(at::randn({B, H, N, d}, o)), in.v = at::randn({B, H, N, d}, o);
  in.theta = 0.3 * at::rand({B, H, N}, o), in.alpha = 0.2 * at::rand({B, H, N}, o), in.eta = at::rand({B, H, N}, o);
  for (int64_t l = 0; l < L; ++l) {
    const int64_t a = l == 0 ? d : 2 * d, b = l + 1 == L ? d : 2 * d;
    in.w0.push_back(at::randn({H, a, b}, o) / std::sqrt(static_cast<double>(a)));
  }
  return in;
}

inline MemoryState start(const Inputs& in, bool momentum) {
  MemoryState s = initial_memory_state(in.w0, B, at::kDouble);
  if (momentum)
    for (auto& m : s.momentum) m = 0.1 * at::randn_like(m);
  return s;
}

}  // namespace attnlab::kernels::test_inputs
