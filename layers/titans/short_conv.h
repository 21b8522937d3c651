// A depthwise causal convolution over time, kernel κ per channel: y_t = Σ_{i<κ} w_i ⊙ x_{t−i}.
// The κ − 1 rows before the call (a decoding tail or a context-parallel halo) come in as
// `tail`; zeros when undefined (the sequence start).
#pragma once
#include <ATen/core/Tensor.h>

namespace attnlab::layers {

/// x [B, T, C], weight [C, κ] (tap i multiplies x_{t−i}), tail [B, κ−1, C] or undefined -> [B, T, C].
at::Tensor causal_short_conv(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& tail);

/// The last κ − 1 rows of `tail` then `x` along T: the tail of the next call.
at::Tensor next_conv_tail(const at::Tensor& x, const at::Tensor& tail, int64_t kernel);

}  // namespace attnlab::layers
