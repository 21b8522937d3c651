// Shared plumbing of the linear-attention mixers (gla, lightning, hedgehog) over the kernel
// family of kernels/linear/api.h (docs/kernels/linear.md): kernel options checked once at
// construction, the GQA head layout, the FLOP estimate, and a base class for mixers whose
// whole decoding state is the kernel's S [B, H, dk, dv].
#pragma once
#include <ATen/core/Tensor.h>

#include <utility>

#include "framework/model/mixer.h"
#include "kernels/linear/api.h"

namespace attnlab::layers {

/// Kernel options with `scale` and the chunking; throws if sub_chunk does not divide chunk.
kernels::LinearAttentionOptions make_kernel_options(double scale, int64_t chunk, int64_t sub_chunk);

/// [B, T, H, d] -> [B, H, T, d] with kv heads repeated to `heads` (GQA).
inline at::Tensor to_heads(const at::Tensor& x, int64_t heads) {
  at::Tensor t = x.transpose(1, 2);
  return x.size(2) == heads ? t : t.repeat_interleave(heads / x.size(2), 1);
}

/// Forward FLOPs per token of the chunked kernel beyond projections: state update and readout
/// (2·dk·dv MACs each) plus intra-chunk scores and A·V over C/2 keys on average.
double linear_attention_flops_per_token(int64_t heads, int64_t dk, int64_t dv, int64_t chunk);

/// Decoding state of a linear-attention mixer: S [B, H, dk, dv] in fp32 (fp64 for fp64 models).
struct LinearState : MixerState {
  at::Tensor S;
};

/// A mixer whose recurrence state is exactly the kernel's S: forward, init_state and step all
/// come from `mix`, so parallel and token-by-token paths cannot drift apart.
class LinearStateMixer : public Mixer {
 public:
  at::Tensor forward(const at::Tensor& x, const MixerContext& ctx) override;
  std::unique_ptr<MixerState> init_state(int64_t batch, int64_t max_len) override;
  at::Tensor step(const at::Tensor& x_t, MixerState& state) override;
  /// mix() runs the kernel through linear_attention_in_context (layers/common/sharded_linear.h).
  std::vector<CpStrategy> cp_strategies() const override;
  /// The kernel runs each document piece as a row (the projections, norms and gates are per
  /// token and need nothing); shards also reset the state passed between them.
  bool handles_documents() const override { return true; }

 protected:
  /// x [B, T, D] from state s0 (undefined = zeros) -> {y [B, T, D], S_T [B, H, dk, dv]}.
  virtual std::pair<at::Tensor, at::Tensor> mix(const at::Tensor& x, const at::Tensor& s0,
                                                const MixerContext& ctx) = 0;
  int64_t state_heads_ = 0, state_dk_ = 0, state_dv_ = 0;  ///< set by the derived constructor
};

}  // namespace attnlab::layers
