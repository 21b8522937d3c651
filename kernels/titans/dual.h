// Titans memory, the chunkwise dual form (docs/mixers/titans.md, "The dual form"): inside a
// chunk the two nested linear recurrences (momentum, forgetting) unroll to
//   W_t = B_t W + D_t S − Σ_{j≤t} C_{t,j} θ_j u_j,   C = P^α P^η,  D = P^α Γ,
// with u_j the anchor gradient of token j, a sum of rank-1 layer products; a query is pushed
// through the per-token weights layer by layer without materialising them. A chunk costs one
// MLP forward and backward on its keys at the anchor, a query pass of GEMMs and n×n products,
// and a rank-n state update; no per-token weights, no scan. Equal to memory_reference
// (reference.h) up to rounding, differentiable by autograd to second order (the explicit σ').
#pragma once
#include <ATen/core/Tensor.h>

#include <utility>

#include "kernels/titans/spec.h"

namespace attnlab::kernels {

/// Same contract as memory_reference: starts from any state (also inside a chunk, τ > 0).
std::pair<at::Tensor, MemoryState> memory_dual(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                               const at::Tensor& theta, const at::Tensor& alpha, const at::Tensor& eta,
                                               const MemoryState& state, const MemorySpec& spec);

}  // namespace attnlab::kernels
