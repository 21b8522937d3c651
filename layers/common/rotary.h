// Rotary position embedding, rotate-half convention (HF Llama): dimension j pairs with j + d/2,
// theta_m = base^(-2m/d), optionally rescaled (linear, or Llama 3's frequency bands; see
// docs/mixers/softmax.md, "RoPE scaling"). Angles are computed in fp32 (fp64 for fp64 inputs)
// from absolute positions so decoding at position p matches the parallel forward.
#pragma once
#include <ATen/core/Tensor.h>

#include <string>

namespace attnlab::layers {

struct RopeSpec {
  double base = 10000.0;
  std::string scaling = "none";  ///< none | linear | llama3
  double factor = 1.0;           ///< linear, llama3: how much longer the context became
  double low_freq_factor = 1.0, high_freq_factor = 4.0;  ///< llama3: the band edges
  int64_t original_max_len = 8192;  ///< llama3: the pretraining context
};

/// The d/2 inverse frequencies of `spec` for head width d, in `options`' dtype.
at::Tensor rope_inverse_frequencies(const RopeSpec& spec, int64_t d, const at::TensorOptions& options);

/// x [B, T, H, d] at positions offset..offset+T-1 -> rotated x, same shape and dtype.
at::Tensor apply_rotary(const at::Tensor& x, int64_t offset, double base);
/// The same at explicit positions [T] or [B, T] (int64; a context-parallel shard's, or positions
/// within packed documents).
at::Tensor apply_rotary_at(const at::Tensor& x, const at::Tensor& positions, double base);
at::Tensor apply_rotary_at(const at::Tensor& x, const at::Tensor& positions, const RopeSpec& spec);

}  // namespace attnlab::layers
