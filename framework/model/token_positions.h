// Token positions of one model or mixer call (MixerContext::positions): what RoPE, position
// masks and learned position embeddings use.
#pragma once
#include <ATen/core/Tensor.h>

#include "framework/model/mixer.h"

namespace attnlab {

/// ctx.positions [B, T] when set (checked against B, T; `who` names the mixer in the error);
/// else, with packed documents on a whole sequence, the positions within them [B, T];
/// otherwise [T]: 0..T-1, shifted to this rank's contiguous shard under context parallelism.
at::Tensor call_positions(const MixerContext& ctx, int64_t B, int64_t T, c10::Device device, const char* who);

}  // namespace attnlab
