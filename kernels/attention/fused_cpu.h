// Tiled CPU attention for the softmax family (docs/kernels/attention.md): FlashAttention-2
// style, at::parallel_for over (batch, head, query tile), fp32 accumulation (fp64 for fp64
// inputs). Softmax keeps an online max and sum per row and stores the log-sum-exp, so the
// backward recomputes P = exp(z − L) instead of keeping a T × T matrix; sigmoid keeps no row
// statistics at all. Key tiles no query of a tile can see (causal, window, documents, keep
// blocks) are never touched; rows outside active_rows are never computed. GQA without
// repeating K/V.
#pragma once
#include <ATen/core/Tensor.h>

#include "kernels/attention/spec.h"

namespace attnlab::kernels {

/// q [B, H, Tq, d], k, v [B, Hkv, Tk, d], key_bias [B, Hkv, Tk] or undefined (all checked);
/// returns [B, H, Tq, d] in q's dtype, as AttentionSpec defines it. Differentiable in q, k, v
/// and key_bias (hand-written backward).
at::Tensor attention_fused(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& key_bias,
                           const AttentionSpec& spec);

/// Causal softmax with bottom-right alignment: attention_fused with a default spec.
at::Tensor causal_attention_fused(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale);

}  // namespace attnlab::kernels
