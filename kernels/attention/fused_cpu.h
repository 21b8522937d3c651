// Tiled attention for the softmax family (docs/kernels/attention.md), the one entry point for
// CPU and CUDA tensors (CUDA: fused_cuda.h, not yet validated on a GPU). On CPU:
// FlashAttention-2 style, at::parallel_for over (batch, head, query tile), fp32 accumulation
// (fp64 for fp64 inputs), the widest instruction-set copy this CPU runs (cpu_isa.h). Softmax
// keeps an online max and sum per row and stores the log-sum-exp, so the backward recomputes
// P = exp(z − L) instead of keeping a T × T matrix; sigmoid keeps no row statistics at all.
// Key tiles no query of a tile can see (causal, window, documents, key_until) are never
// touched, nor tiles whose element mask (keep blocks) comes out empty; rows outside
// active_rows are never computed. GQA without repeating K/V.
#pragma once
#include <ATen/core/Tensor.h>

#include "kernels/attention/spec.h"

namespace attnlab::kernels {

/// q [B, H, Tq, d], k, v [B, Hkv, Tk, d], key_bias [B, Hkv, Tk] or undefined (all checked);
/// returns [B, H, Tq, d] in q's dtype, as AttentionSpec defines it. Differentiable in q, k, v
/// and key_bias (hand-written backward).
at::Tensor attention_fused(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& key_bias,
                           const AttentionSpec& spec);

/// The CPU tiles without autograd, for callers that merge partial attentions themselves (ring
/// attention over blocks of keys): the output and the log-sum-exp [B, H, Tq] (+∞ where a row
/// sees no key), in the accumulation dtype (fp32; fp64 for fp64 inputs).
struct AttentionTiles {
  at::Tensor out, lse;
};
AttentionTiles attention_fused_forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                       const at::Tensor& key_bias, const AttentionSpec& spec);

/// The gradients of one such call given the output and log-sum-exp of the WHOLE softmax it is a
/// part of: with them P = e^{z − L} and D = rowsum(dO ∘ O) make these exactly this part's share
/// of dq, dk, dv (and dbias, undefined without a bias). Accumulation dtype.
struct AttentionTileGrads {
  at::Tensor dq, dk, dv, dbias;
};
AttentionTileGrads attention_fused_backward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                            const at::Tensor& key_bias, const at::Tensor& out, const at::Tensor& lse,
                                            const at::Tensor& dout, const AttentionSpec& spec);

/// Causal softmax with bottom-right alignment: attention_fused with a default spec.
at::Tensor causal_attention_fused(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale);

}  // namespace attnlab::kernels
