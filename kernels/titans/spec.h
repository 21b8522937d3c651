// Titans neural long-term memory (docs/mixers/titans.md): per head, the memory is an MLP
// f(·; W) with L layers whose weights are the recurrent state. Each token takes one step of
// gradient descent with momentum and forgetting on c·‖f(k_t; W) − v_t‖², the gradient taken at
// the weights in force at the start of the token's chunk of `chunk` tokens (the anchored
// recurrence), and reads y_t = f(q_t; W_t) (or W_{t−1}).
#pragma once
#include <ATen/core/Tensor.h>

#include <vector>

namespace attnlab::kernels {

enum class MemoryActivation { gelu_tanh, silu };

struct MemorySpec {
  int64_t chunk = 64;       ///< b: tokens sharing one anchor (1 = the online recurrence)
  double loss_scale = 1.0;  ///< c in c·‖f(k) − v‖² (the paper: 1)
  MemoryActivation activation = MemoryActivation::gelu_tanh;
  bool read_after_write = true;  ///< y_t = f(q_t; W_t); false: f(q_t; W_{t−1})
  /// > 0: each token's layer gradient u_l = a_{l−1}ᵀ δ_l is soft-clamped to this Frobenius norm,
  /// u ← u · G tanh(‖u‖/G) / ‖u‖ (‖u‖ = ‖a‖‖δ‖ for the rank-1 product), so no inner step is
  /// unbounded. 0: off.
  double max_grad_norm = 0;
};

/// The recurrent state, per layer l of the memory MLP: [B, H, w_{l−1}, w_l] each, fp32 at least.
struct MemoryState {
  std::vector<at::Tensor> anchor;    ///< W^A: the weights at the start of the current chunk
  std::vector<at::Tensor> weights;   ///< W: the running weights
  std::vector<at::Tensor> momentum;  ///< S: the surprise with momentum
  int64_t tau = 0;                   ///< tokens of the current chunk already consumed
};

/// The state at a sequence start: W^A = W = W0 (per head [H, w_{l−1}, w_l], broadcast over the
/// batch), S = 0, in `dtype`.
MemoryState initial_memory_state(const std::vector<at::Tensor>& w0, int64_t batch, at::ScalarType dtype);

/// σ and σ' of the memory's activation (explicit expressions, so autograd differentiates through
/// them to second order).
at::Tensor memory_activation(const at::Tensor& z, MemoryActivation a);
at::Tensor memory_activation_grad(const at::Tensor& z, MemoryActivation a);

/// The soft-clamp factor of spec.max_grad_norm for rows of a [.., n, w_{l−1}] and δ [.., n, w_l]
/// -> [.., n, 1] (ones when the clamp is off).
at::Tensor gradient_clamp(const at::Tensor& a, const at::Tensor& delta, const MemorySpec& spec);

}  // namespace attnlab::kernels
