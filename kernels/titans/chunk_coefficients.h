// The gate coefficients of the chunkwise dual form (docs/mixers/titans.md, "The dual form"),
// for a piece of n tokens that starts at an anchor and shares it:
//   W_t = B_t W + D_t S − Σ_{j≤t} C_{t,j} θ_j u_j,   C = P^α P^η,  D = P^α Γ,
// with P^α, P^η the segment products of 1 − α and η, B and Γ their running products. Both the
// torch composition (dual.cpp) and the fused kernel (fused.cpp) take them from here, as
// differentiable torch ops over any leading dims, so the fused kernel's backward only has to
// return their gradients.
#pragma once
#include <ATen/core/Tensor.h>

namespace attnlab::kernels {

struct ChunkCoefficients {
  at::Tensor query;         ///< [..., n, n]: C_{t,j} θ_j for the query of row t (W_{t−1}'s for read-before)
  at::Tensor query_weight;  ///< [..., n]: B_t (or B_{t−1}), the coefficient of W in the query's weights
  at::Tensor query_surprise;  ///< [..., n]: D_t (or D_{t−1}), the coefficient of S
  at::Tensor end_weight;      ///< [..., n]: C_{n,j} θ_j, token j's share of W at the piece's end
  at::Tensor end_surprise;    ///< [..., n]: (Γ_n / Γ_j) θ_j, its share of S there
  at::Tensor end_decay;       ///< [...]: B_n, the end's W coefficient of W
  at::Tensor end_mix;         ///< [...]: D_n, the end's W coefficient of S
  at::Tensor end_momentum;    ///< [...]: Γ_n, the end's S coefficient of S
};

/// From θ, α, η [..., n] (the accumulation dtype).
ChunkCoefficients chunk_coefficients(const at::Tensor& theta, const at::Tensor& alpha, const at::Tensor& eta,
                                     bool read_after_write);

/// exp of the segment sums of x [..., n]: P[..., t, i] = exp(Σ_{i<k≤t} x_k) for i ≤ t, 0 above
/// the diagonal; built by a masked cumulative sum (no differences of cumulative sums, so no
/// cancellation and no −inf − −inf).
at::Tensor segsum_exp(const at::Tensor& x);

}  // namespace attnlab::kernels
