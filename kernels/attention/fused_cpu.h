// Tiled causal softmax attention on CPU (docs/kernels/attention.md): FlashAttention-2 style,
// at::parallel_for over (batch, head, query tile); an online max and sum per row in the
// accumulation dtype (fp32, fp64 for fp64 inputs); the log-sum-exp is stored and the backward
// recomputes P = exp(s·QKᵀ − L) instead of keeping a T × T matrix. Bottom-right causal
// alignment (query i of Tq sees key j iff j ≤ i + Tk − Tq); key tiles above the diagonal are
// never visited. GQA without repeating K/V: query head h reads kv head h / (H / Hkv).
#pragma once
#include <ATen/core/Tensor.h>

namespace attnlab::kernels {

/// q [B, H, Tq, d], k, v [B, Hkv, Tk, d] (checked); returns [B, H, Tq, d] in q's dtype.
/// Differentiable in q, k and v (hand-written backward).
at::Tensor causal_attention_fused(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale);

}  // namespace attnlab::kernels
