#include "layers/swa/swa.h"

namespace attnlab::layers {

SlidingWindowAttention::SlidingWindowAttention(const SwaOptions& o, const MixerShape& s)
    : AttentionMixer("swa", o.core, s), window_(o.window), sinks_(o.sinks) {}

kernels::AttentionSpec SlidingWindowAttention::base_spec() const {
  kernels::AttentionSpec s = AttentionMixer::base_spec();
  s.window = window_, s.sinks = sinks_;
  return s;
}

ATTNLAB_REGISTER_MIXER("swa", SlidingWindowAttention, SwaOptions,
                       "sliding-window causal softmax attention with optional sink tokens (tiled kernel)");

}  // namespace attnlab::layers
