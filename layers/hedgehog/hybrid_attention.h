// Normalised linear attention and the LoLCATs sliding-window + linear hybrid
// (docs/mixers/hedgehog.md, "As implemented"). For query i with window w:
//   W_i = {j : i − w < j ≤ i},  L_i = {j : j ≤ i − w},  s_ij = q_i·k_j / sqrt(d),
//   m_i = max_{j∈W_i} s_ij,  γ_h = sigmoid(θ_h)
//   y_i = (γ Σ_{W_i} e^{s_ij − m_i} v_j + Σ_{L_i} φq_i·φk_j v_j) / (γ Σ_{W_i} e^{s_ij − m_i} + Σ_{L_i} φq_i·φk_j)
// The max shift m_i is part of the function (it weights softmax terms against linear ones).
// The linear sums come from the shared linear-attention kernel with a ones column appended to
// v (numerator and denominator in one pass); with w > 0 the keys are delayed by w tokens.
// The window part is blocked: queries in blocks of w see at most 2w keys, O(T·w).
// Under context parallelism (docs/parallelism.md) the linear sums run through a sharded
// recurrence and the window needs the `window` tokens before the shard (a halo); with keys
// delayed by w, every rank's delayed key stream is again a contiguous slice of one stream.
#pragma once
#include <ATen/core/Tensor.h>

#include <functional>

#include "kernels/linear/api.h"

namespace attnlab::layers {

/// Runs linear attention (q, k, v) -> out with scale 1: the plain kernel or a sharded one.
using LinearRunner = std::function<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&)>;

/// The plain kernel with `opts` (scale forced to 1).
LinearRunner kernel_runner(kernels::LinearAttentionOptions opts);

/// The n ≤ window tokens just before this call's first token (post-RoPE k, v and φk, each
/// [B, H, n, ·]); undefined tensors (n = 0) at the start of the sequence.
struct WindowHalo {
  at::Tensor k, v, phi_k;
  at::Tensor documents;  ///< [B, n] their document ids (with packed documents)
};

/// Σ_{j≤i} φq_i·φk_j v_j / (Σ_{j≤i} φq_i·φk_j + eps). phi_* [B, H, T, F], v [B, H, T, dv].
at::Tensor normalized_linear_attention(const at::Tensor& phi_q, const at::Tensor& phi_k,
                                       const at::Tensor& v, double eps, const LinearRunner& linear);

/// The hybrid above (window ≥ 1); q, k [B, H, T, d] post-RoPE, gamma [H] in (0, 1). With
/// `documents` [B, T] (and the halo's), neither part reaches a key of another document (the
/// linear runner resets its state at boundaries itself).
at::Tensor sliding_window_hybrid_attention(const at::Tensor& q, const at::Tensor& k,
                                           const at::Tensor& v, const at::Tensor& phi_q,
                                           const at::Tensor& phi_k, const at::Tensor& gamma,
                                           int64_t window, const LinearRunner& linear,
                                           const WindowHalo& halo = {}, const at::Tensor& documents = {});

/// The hybrid's weights [B, H, T, T] (rows sum to 1, fp32 or fp64): y = weights · v.
at::Tensor sliding_window_hybrid_weights(const at::Tensor& q, const at::Tensor& k, const at::Tensor& phi_q,
                                         const at::Tensor& phi_k, const at::Tensor& gamma, int64_t window);

/// The pure linear form's weights [B, H, T, T]: φq_i·φk_j / (Σ_{j'≤i} φq_i·φk_j' + eps) for j ≤ i.
at::Tensor normalized_linear_weights(const at::Tensor& phi_q, const at::Tensor& phi_k, double eps);

/// The same function written with full T×T masks (the definition the blocked form is tested on).
at::Tensor sliding_window_hybrid_reference(const at::Tensor& q, const at::Tensor& k,
                                           const at::Tensor& v, const at::Tensor& phi_q,
                                           const at::Tensor& phi_k, const at::Tensor& gamma,
                                           int64_t window);

}  // namespace attnlab::layers
