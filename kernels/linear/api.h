// Gated linear attention: ONE recurrence behind the GLA, Lightning and Hedgehog mixers
// (docs/kernels/linear.md). Per (batch, head), with state S [dk, dv]:
//   S_t = Diag(exp(g_t)) S_{t-1} + k_t v_tᵀ,     o_t = scale · S_tᵀ q_t
// Gate modes: `g` [B, H, T, dk] per-channel log-decay (GLA), [H] constant per head
// (Lightning), or undefined (no decay: plain / Hedgehog linear attention). All log-gates ≤ 0.
// Implementations: reference (log-space quadratic), recurrent (token by token), chunked
// (torch composite, autograd backward), fused (hand-written forward and backward; CPU, and
// CUDA when built). Hedgehog's normaliser rides in the same call by appending a ones column
// to v (numerator and denominator from one pass, see layers/hedgehog).
#pragma once
#include <ATen/core/Tensor.h>

#include <string>

namespace attnlab::kernels {

struct LinearAttentionOptions {
  double scale = 1.0;
  int64_t chunk_size = 64;  ///< C: tokens per chunk of the state-passing scan
  int64_t sub_chunk = 16;   ///< c: sub-chunk of the intra-chunk scores (divides C)
  /// auto | reference | recurrent | chunked | fused. `auto` takes `fused` on CPU; on CUDA it
  /// takes `fused` only in builds whose CUDA kernels passed tools/gpu/check.sh
  /// (ATTNLAB_LINEAR_CUDA_VALIDATED), the chunked composite otherwise.
  std::string kernel = "auto";
};

struct LinearAttentionResult {
  at::Tensor out;          ///< [B, H, T, dv], dtype of q
  at::Tensor final_state;  ///< [B, H, dk, dv], fp32 (fp64 for fp64 inputs)
};

/// q, k [B, H, T, dk]; v [B, H, T, dv]; g: see above; initial_state [B, H, dk, dv] or undefined.
/// Differentiable in q, k, v, g (vector mode) and initial_state for every `kernel`. This is
/// the one place inputs and options are checked; the implementations assume checked inputs.
LinearAttentionResult linear_attention(const at::Tensor& q, const at::Tensor& k,
                                       const at::Tensor& v, const at::Tensor& g,
                                       const at::Tensor& initial_state,
                                       const LinearAttentionOptions& opts);

/// Throws a c10::Error naming the values unless 0 < sub_chunk, sub_chunk divides chunk_size.
void check_linear_options(const LinearAttentionOptions& opts);

/// The name of the implementation `opts.kernel` resolves to for these inputs (for logs, bench).
std::string resolve_linear_kernel(const at::Tensor& q, const std::string& kernel);

/// Accumulation dtype of the recurrence for inputs of dtype `t` (fp64 stays fp64, else fp32).
at::ScalarType linear_state_dtype(at::ScalarType t);

/// Whether the fused CUDA kernels were compiled into this binary.
bool linear_cuda_available();

}  // namespace attnlab::kernels
