// Plain-torch definitions of the gated linear-attention recurrence (docs/kernels/linear.md,
// "Reference form", "Recurrent form"): the log-space quadratic form and the token-by-token
// recurrence. Every faster path is tested against these in float64. Inputs as in api.h,
// checked by linear_attention() and with `g` expanded to [B, H, T, dk]. Both return
// {out [B,H,T,dv], final_state [B,H,dk,dv]}.
#pragma once
#include "kernels/linear/api.h"

namespace attnlab::kernels {

/// P_ts = scale · Σ_d q_td k_sd exp(G_td − G_sd) (t ≥ s), O = P V + scale·(q⊙e^G) S0, with
/// G = cumsum(g). Exponents are masked before exp, so nothing overflows. O(T² dk) memory.
LinearAttentionResult linear_attention_parallel_reference(const at::Tensor& q, const at::Tensor& k,
                                                          const at::Tensor& v, const at::Tensor& g,
                                                          const at::Tensor& initial_state,
                                                          double scale);

/// S_t = exp(g_t)[:, None] ⊙ S_{t-1} + k_t v_tᵀ;  o_t = scale · S_tᵀ q_t. State in fp32/fp64.
LinearAttentionResult linear_attention_recurrent_reference(const at::Tensor& q, const at::Tensor& k,
                                                           const at::Tensor& v, const at::Tensor& g,
                                                           const at::Tensor& initial_state,
                                                           double scale);

}  // namespace attnlab::kernels
