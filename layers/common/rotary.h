// Rotary position embedding, rotate-half convention (HF Llama): dimension j pairs with j + d/2,
// theta_m = base^(-2m/d). Angles are computed in fp32 (fp64 for fp64 inputs) from absolute
// positions so decoding at position p matches the parallel forward. See docs/mixers/softmax.md.
#pragma once
#include <ATen/core/Tensor.h>

namespace attnlab::layers {

/// x [B, T, H, d] at positions offset..offset+T-1 -> rotated x, same shape and dtype.
at::Tensor apply_rotary(const at::Tensor& x, int64_t offset, double base);
/// The same at explicit positions [T] or [B, T] (int64; a context-parallel shard's, or positions
/// within packed documents).
at::Tensor apply_rotary_at(const at::Tensor& x, const at::Tensor& positions, double base);

}  // namespace attnlab::layers
