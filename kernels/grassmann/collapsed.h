// Causal Grassmann mixing, the collapsed form (docs/mixers/grassmann.md, "Collapsed form"). The
// Plücker map is bilinear and each pair's normaliser is a scalar, so the average over offsets
// folds into one vector per token, w_t = Σ_Δ z_{t−Δ} / (|valid| · n_{t,Δ}), and one Plücker
// vector pl(z_t, w_t) and one projection row per token replace one per (token, offset); each
// n comes from the Lagrange identity ‖pl(u, v)‖² = ‖u‖²‖v‖² − (u·v)² in O(r). Equal to the naive
// form (reference.h) up to rounding, gradients included.
#pragma once
#include <ATen/core/Tensor.h>

#include "kernels/grassmann/spec.h"

namespace attnlab::kernels {

/// Same contract as grassmann_mix_reference.
at::Tensor grassmann_mix_collapsed(const at::Tensor& z, const at::Tensor& weight, const at::Tensor& bias,
                                   const at::Tensor& documents, const GrassmannSpec& spec);

}  // namespace attnlab::kernels
