// Titans memory, the plain token-by-token anchored recurrence (docs/mixers/titans.md, "The
// recurrence"): the oracle of the chunked dual form (dual.h), and the decoding step.
#pragma once
#include <ATen/core/Tensor.h>

#include <utility>
#include <vector>

#include "kernels/titans/spec.h"

namespace attnlab::kernels {

/// f(x; W) for x [B, H, n, w_0] and W (per layer [B, H, w_{l−1}, w_l]) -> [B, H, n, w_L].
at::Tensor memory_apply(const at::Tensor& x, const std::vector<at::Tensor>& W, MemoryActivation a);

/// ∇_W of c·‖f(k; W) − v‖² for one token per (batch, head): k, v [B, H, d] -> per layer
/// [B, H, w_{l−1}, w_l] (the rank-1 products a_{l−1}ᵀ δ_l of the explicit backward).
std::vector<at::Tensor> memory_inner_gradient(const at::Tensor& k, const at::Tensor& v, const std::vector<at::Tensor>& W,
                                              const MemorySpec& spec);

/// q, k, v [B, H, N, d]; theta, alpha, eta [B, H, N] (learning rate, forgetting, momentum decay);
/// from `state` -> {y [B, H, N, d], the state after the N tokens}. Differentiable.
std::pair<at::Tensor, MemoryState> memory_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                    const at::Tensor& theta, const at::Tensor& alpha,
                                                    const at::Tensor& eta, const MemoryState& state,
                                                    const MemorySpec& spec);

}  // namespace attnlab::kernels
