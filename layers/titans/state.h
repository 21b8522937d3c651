// The titans decoding state (layers/titans/titans.h): the memory, the short convs' input tails,
// the attention's KV cache, and for mac where the token stands in its segment.
#pragma once
#include <ATen/core/Tensor.h>

#include <memory>

#include "framework/model/mixer.h"
#include "kernels/titans/spec.h"

namespace attnlab::layers {

struct TitansState : MixerState {
  int64_t batch = 0;
  kernels::MemoryState memory;
  /// [B, κ − 1, 3·H·d] of the pre-conv q, k, v projections of the layer input (mac: q only,
  /// [B, κ − 1, H·d], the one projection its input stream needs)
  at::Tensor conv_tail;
  std::unique_ptr<MixerState> attention;
  // mac only
  kernels::MemoryState segment_start;  ///< M_{i−1}: the memory the segment's retrievals read
  at::Tensor output_conv_tail;         ///< the conv tail of the attention-output stream the memory learns from
  int64_t in_segment = 0;              ///< tokens of the current segment already decoded
};

}  // namespace attnlab::layers
