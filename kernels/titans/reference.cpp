#include "kernels/titans/reference.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/clamp_min.h>
#include <ATen/ops/erf.h>
#include <ATen/ops/ones_like.h>
#include <ATen/ops/where.h>
#include <ATen/ops/exp.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/sigmoid.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/tanh.h>
#include <ATen/ops/zeros_like.h>

#include <cmath>

namespace attnlab::kernels {

MemoryState initial_memory_state(const std::vector<at::Tensor>& w0, int64_t batch, at::ScalarType dtype) {
  MemoryState s;
  for (const at::Tensor& w : w0) {
    at::Tensor b = w.to(dtype).unsqueeze(0).expand({batch, w.size(0), w.size(1), w.size(2)});
    s.anchor.push_back(b);
    s.weights.push_back(b);
    s.momentum.push_back(at::zeros_like(b));
  }
  return s;
}

at::Tensor memory_activation(const at::Tensor& z, MemoryActivation a) {
  if (a == MemoryActivation::silu) return z * at::sigmoid(z);
  const double c = std::sqrt(2.0 / M_PI);
  return 0.5 * z * (1 + at::tanh(c * (z + 0.044715 * z.pow(3))));
}

at::Tensor memory_activation_grad(const at::Tensor& z, MemoryActivation a) {
  if (a == MemoryActivation::silu) {
    const at::Tensor s = at::sigmoid(z);
    return s * (1 + z * (1 - s));
  }
  // d/dz of 0.5 z (1 + tanh(u)), u = c (z + 0.044715 z³).
  const double c = std::sqrt(2.0 / M_PI);
  const at::Tensor t = at::tanh(c * (z + 0.044715 * z.pow(3)));
  return 0.5 * (1 + t) + 0.5 * z * (1 - t * t) * c * (1 + 3 * 0.044715 * z * z);
}

at::Tensor gradient_clamp(const at::Tensor& a, const at::Tensor& delta, const MemorySpec& spec) {
  if (spec.max_grad_norm <= 0) return at::ones_like(delta.narrow(-1, 0, 1));
  const double G = spec.max_grad_norm;
  const at::Tensor n = a.norm(2, -1, true) * delta.norm(2, -1, true);  // ‖aᵀδ‖_F of the rank-1 product
  const at::Tensor safe = at::clamp_min(n, 1e-30);
  return at::where(n > 1e-30, G * at::tanh(safe / G) / safe, at::ones_like(n));
}

at::Tensor memory_apply(const at::Tensor& x, const std::vector<at::Tensor>& W, MemoryActivation a) {
  at::Tensor h = x;
  for (size_t l = 0; l < W.size(); ++l) {
    h = at::matmul(h, W[l]);
    if (l + 1 < W.size()) h = memory_activation(h, a);
  }
  return h;
}

std::vector<at::Tensor> memory_inner_gradient(const at::Tensor& k, const at::Tensor& v, const std::vector<at::Tensor>& W,
                                              const MemorySpec& spec) {
  const size_t L = W.size();
  std::vector<at::Tensor> a{k.unsqueeze(-2)}, z;  // rows [B, H, 1, w]
  for (size_t l = 0; l < L; ++l) {
    z.push_back(at::matmul(a.back(), W[l]));
    if (l + 1 < L) a.push_back(memory_activation(z.back(), spec.activation));
  }
  std::vector<at::Tensor> grad(L);
  at::Tensor delta = 2 * spec.loss_scale * (z.back() - v.unsqueeze(-2));
  for (size_t l = L; l-- > 0;) {
    grad[l] = a[l].transpose(-1, -2) * (delta * gradient_clamp(a[l], delta, spec));  // a_{l−1}ᵀ δ_l
    if (l > 0) delta = at::matmul(delta, W[l].transpose(-1, -2)) * memory_activation_grad(z[l - 1], spec.activation);
  }
  return grad;
}

std::pair<at::Tensor, MemoryState> memory_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                    const at::Tensor& theta, const at::Tensor& alpha,
                                                    const at::Tensor& eta, const MemoryState& state,
                                                    const MemorySpec& spec) {
  TORCH_CHECK(spec.chunk >= 1, "titans: chunk must be >= 1, got ", spec.chunk);
  MemoryState s = state;
  if (q.size(2) == 0) return {q.clone(), s};
  const auto acc = s.weights.at(0).scalar_type();
  std::vector<at::Tensor> ys;
  auto gate = [&](const at::Tensor& g, int64_t t) { return g.select(2, t).to(acc).unsqueeze(-1).unsqueeze(-1); };
  for (int64_t t = 0; t < q.size(2); ++t) {
    if (s.tau == 0) s.anchor = s.weights;
    const at::Tensor qt = q.select(2, t).to(acc);
    if (!spec.read_after_write) ys.push_back(memory_apply(qt.unsqueeze(-2), s.weights, spec.activation).squeeze(-2));
    const auto u = memory_inner_gradient(k.select(2, t).to(acc), v.select(2, t).to(acc), s.anchor, spec);
    for (size_t l = 0; l < u.size(); ++l) {
      s.momentum[l] = gate(eta, t) * s.momentum[l] - gate(theta, t) * u[l];
      s.weights[l] = (1 - gate(alpha, t)) * s.weights[l] + s.momentum[l];
    }
    if (spec.read_after_write) ys.push_back(memory_apply(qt.unsqueeze(-2), s.weights, spec.activation).squeeze(-2));
    s.tau = (s.tau + 1) % spec.chunk;
  }
  if (s.tau == 0) s.anchor = s.weights;  // a completed chunk: the next one anchors here
  return {at::stack(ys, 2).to(q.scalar_type()), s};
}

}  // namespace attnlab::kernels
