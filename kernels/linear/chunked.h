// Chunkwise gated linear attention as a torch composite (docs/kernels/linear.md, "Chunked form"):
// intra-chunk scores with the sub-chunk trick, inter-chunk state passing; autograd gives the
// backward. Every exponent is a later-minus-earlier cumulative log-gate (≤ 0): no division by
// decays, no overflow. The fused kernels are tested against this and the reference.
#pragma once
#include "kernels/linear/api.h"

namespace attnlab::kernels {

/// Inputs as in reference.h (checked, g expanded to [B, H, T, dk]); T need not divide chunk_size.
LinearAttentionResult linear_attention_chunked(const at::Tensor& q, const at::Tensor& k,
                                               const at::Tensor& v, const at::Tensor& g,
                                               const at::Tensor& initial_state, double scale,
                                               int64_t chunk_size, int64_t sub_chunk);

}  // namespace attnlab::kernels
