// Plain-torch softmax-family attention: the definition every faster path is tested against
// (docs/kernels/attention.md, "Reference"). It builds the whole [B, H, Tq, Tk] score matrix, so
// it is for tests and short sequences only.
#pragma once
#include <ATen/core/Tensor.h>

#include "kernels/attention/spec.h"

namespace attnlab::kernels {

/// q [B, H, Tq, d], k, v [B, Hkv, Tk, d], key_bias [B, Hkv, Tk] or undefined; returns
/// [B, H, Tq, d] as AttentionSpec defines it. Scores in fp32 (fp64 for fp64 inputs).
at::Tensor attention_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                               const at::Tensor& key_bias, const AttentionSpec& spec);

/// The weights of attention_reference, [B, H, Tq, Tk] in its accumulation type: softmax rows
/// sum to 1 over the visible keys (0 for a query that sees none); sigmoid weights as they are.
at::Tensor attention_weights_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& key_bias,
                                       const AttentionSpec& spec);

/// The [B or 1, H or 1, Tq, Tk] boolean visibility AttentionSpec defines (without key_bias).
at::Tensor attention_visibility(const AttentionSpec& spec, int64_t B, int64_t H, int64_t Hkv, int64_t Tq,
                                int64_t Tk, c10::Device device);

/// Causal softmax with bottom-right alignment (query i of Tq sees key j iff j <= i + Tk - Tq,
/// so a single decode query sees the whole cache); a query that sees no key gets 0.
at::Tensor causal_attention_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale);

}  // namespace attnlab::kernels
