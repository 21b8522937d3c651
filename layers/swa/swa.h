// swa: sliding-window causal softmax attention with optional sink tokens (docs/mixers/swa.md).
// Query at position p sees keys at p − window + 1 .. p plus the first `sinks` positions; the
// fused kernel never visits key tiles outside that band, and the decode cache keeps
// sinks + window keys (the oldest non-sink key is evicted).
#pragma once
#include "layers/common/attention_mixer.h"

namespace attnlab::layers {

struct SwaOptions {
  AttentionCoreOptions core;
  int64_t window = 512;
  int64_t sinks = 0;
  template <class V> void visit(V& v) {
    core.visit(v);
    v("window", window, "keys per query, the query's own included", Bounds{1, 1e9});
    v("sinks", sinks, "leading positions every query also sees (attention sinks)", Bounds{0, 1e9});
  }
};

class SlidingWindowAttention : public AttentionMixer {
 public:
  SlidingWindowAttention(const SwaOptions& opts, const MixerShape& shape);

 protected:
  kernels::AttentionSpec base_spec() const override;
  bool plain_softmax() const override { return true; }

 private:
  int64_t window_, sinks_;
};

}  // namespace attnlab::layers
