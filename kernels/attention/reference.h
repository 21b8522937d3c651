// Plain-torch causal attention, the definition every faster softmax-family path is tested
// against (docs/mixers/softmax.md, "Causal alignment"). Bottom-right causal alignment: query i
// of Tq attends to key j iff j <= i + (Tk - Tq), so a single decode query sees the whole cache.
#pragma once
#include <ATen/core/Tensor.h>

namespace attnlab::kernels {

/// q [B, H, Tq, d], k/v [B, Hkv, Tk, d] with H % Hkv == 0 (GQA: head h reads kv head h / (H/Hkv)).
/// Returns [B, H, Tq, d]. Scores and softmax in fp32 (or fp64 for fp64 inputs). A query that
/// sees no key (Tq > Tk) gets 0.
at::Tensor causal_attention_reference(const at::Tensor& q, const at::Tensor& k,
                                      const at::Tensor& v, double scale);

}  // namespace attnlab::kernels
