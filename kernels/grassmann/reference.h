// Causal Grassmann mixing, the plain form (docs/mixers/grassmann.md, "Naive form"): one Plücker
// vector, one normalisation and one projection per (token, offset). The oracle of the collapsed
// fast path (collapsed.h); plain torch ops, differentiable, fp64-testable.
#pragma once
#include <ATen/core/Tensor.h>

#include "kernels/grassmann/spec.h"

namespace attnlab::kernels {

/// u, v [..., r] -> [..., r(r−1)/2]: p_ij = u_i v_j − u_j v_i for i < j, row-major over (i, j).
at::Tensor plucker(const at::Tensor& u, const at::Tensor& v);

/// z [B, N, r] reduced states; weight [d, r(r−1)/2] and bias [d] the Plücker projection;
/// documents [B, N] int64 or undefined. Returns g [B, N − spec.context, d].
at::Tensor grassmann_mix_reference(const at::Tensor& z, const at::Tensor& weight, const at::Tensor& bias,
                                   const at::Tensor& documents, const GrassmannSpec& spec);

namespace grassmann_detail {
/// z_s for every t (zeros where s does not exist) and whether the pair (t, s) is valid [B, N].
std::pair<at::Tensor, at::Tensor> partner(const at::Tensor& z, const at::Tensor& documents, int64_t offset,
                                          bool future);
/// The normaliser n of a pair from ‖p‖² and ‖z_t‖²‖z_s‖² (both [B, N]).
at::Tensor pair_norm(const at::Tensor& p2, const at::Tensor& zz, const GrassmannSpec& spec);
}  // namespace grassmann_detail

}  // namespace attnlab::kernels
