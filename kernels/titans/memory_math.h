// The memory MLP's σ, σ' and σ'' (docs/mixers/titans.md, "Fused CPU kernel"), written once for
// both engines of the fused kernel: on scalars (the CPU rows, fused_cpu_rows.h) and on whole
// tensors (the batched engine, fused_batched.cpp). Each takes z and one auxiliary value per
// element, a = tanh(u(z)) for GELU-tanh (u = c(z + 0.044715 z³), c = √(2/π)) or a = sigmoid(z)
// for SiLU, so the transcendental is computed once per pre-activation. σ'' is the second-order
// path: Δ_l = (Δ_{l+1} Wᵀ) ⊙ σ'(Z_l) is differentiated.
#pragma once
#include <ATen/core/Tensor.h>

#include "kernels/titans/spec.h"

namespace attnlab::kernels::titans_math {

constexpr double kGeluC = 0.7978845608028654;  // √(2/π)
constexpr double kGeluK = 0.044715;

/// The type of the constants in the formulas: the scalar itself, or double for tensors.
template <class V>
struct ConstantOf {
  using type = V;
};
template <>
struct ConstantOf<at::Tensor> {
  using type = double;
};

/// u(z) = c(z + 0.044715 z³), GELU-tanh's argument of tanh.
template <class V>
inline V gelu_inner(const V& z) {
  using T = typename ConstantOf<V>::type;
  return T(kGeluC) * (z + T(kGeluK) * z * z * z);
}

template <class V>
inline V act(const V& z, const V& a, MemoryActivation m) {
  using T = typename ConstantOf<V>::type;
  return m == MemoryActivation::silu ? z * a : T(0.5) * z * (T(1) + a);
}

template <class V>
inline V act_d1(const V& z, const V& a, MemoryActivation m) {
  using T = typename ConstantOf<V>::type;
  if (m == MemoryActivation::silu) return a * (T(1) + z * (T(1) - a));
  const V du = T(kGeluC) * (T(1) + T(3 * kGeluK) * z * z);
  return T(0.5) * (T(1) + a) + T(0.5) * z * (T(1) - a * a) * du;
}

template <class V>
inline V act_d2(const V& z, const V& a, MemoryActivation m) {
  using T = typename ConstantOf<V>::type;
  if (m == MemoryActivation::silu) return a * (T(1) - a) * (T(2) + z * (T(1) - T(2) * a));
  const V du = T(kGeluC) * (T(1) + T(3 * kGeluK) * z * z), ddu = T(6 * kGeluC * kGeluK) * z;
  return (T(1) - a * a) * (du + T(0.5) * z * (ddu - T(2) * a * du * du));
}

}  // namespace attnlab::kernels::titans_math
