// Shared plumbing of the linear-attention mixers (GLA, Lightning, Hedgehog): the recurrent
// decoding state and the kernel options built from a mixer's chunk settings and the call's
// kernel choice. Spec: layers-linear.md §0.
#pragma once
#include <ATen/core/Tensor.h>

#include "framework/model/mixer.h"
#include "kernels/linear/api.h"

namespace attnlab::layers {

/// Decoding state of a linear-attention mixer: S [B, H, dk, dv] in fp32 (fp64 for fp64 models).
struct LinearState : MixerState {
  at::Tensor S;
};

inline kernels::LinearAttentionOptions linear_kernel_options(const MixerContext& ctx, double scale,
                                                             int64_t chunk, int64_t sub_chunk) {
  kernels::LinearAttentionOptions o;
  o.scale = scale, o.chunk_size = chunk, o.sub_chunk = sub_chunk, o.kernel = ctx.kernel;
  return o;
}

/// [B, T, H, d] -> [B, H, T, d] with kv heads repeated to `heads` (GQA).
inline at::Tensor to_heads(const at::Tensor& x, int64_t heads) {
  at::Tensor t = x.transpose(1, 2);
  return x.size(2) == heads ? t : t.repeat_interleave(heads / x.size(2), 1);
}

}  // namespace attnlab::layers
