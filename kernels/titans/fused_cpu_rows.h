// Elementwise and row helpers of the fused CPU Titans memory (fused_cpu_chunk.h). The memory
// MLP's σ, σ' and σ'' are written in z and one auxiliary value per element, a = tanh(u(z)) for
// GELU-tanh (u = c(z + 0.044715 z³), c = √(2/π)) or a = sigmoid(z) for SiLU, which ATen's
// vectorised kernels compute for a whole block at once (a scalar tanh loop would cost more than
// the chunk's GEMMs). σ'' is the second-order path: Δ_l = (Δ_{l+1} Wᵀ) ⊙ σ'(Z_l) is differentiated.
#pragma once
#include <ATen/ops/from_blob.h>
#include <ATen/ops/sigmoid.h>
#include <ATen/ops/tanh.h>

#include <cmath>
#include <cstdint>

#include "kernels/titans/spec.h"

namespace attnlab::kernels::titans_cpu {

constexpr double kGeluC = 0.7978845608028654;  // √(2/π)
constexpr double kGeluK = 0.044715;

/// aux[i] ← tanh(u(z[i])) (GELU-tanh) or sigmoid(z[i]) (SiLU) for n values.
template <class T>
void activation_aux(const T* z, int64_t n, MemoryActivation act, T* aux) {
  if (n == 0) return;
  const auto opts = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
  if (act == MemoryActivation::silu) {
    for (int64_t i = 0; i < n; ++i) aux[i] = z[i];
    at::from_blob(aux, {n}, opts).sigmoid_();
    return;
  }
  for (int64_t i = 0; i < n; ++i) aux[i] = T(kGeluC) * (z[i] + T(kGeluK) * z[i] * z[i] * z[i]);
  at::from_blob(aux, {n}, opts).tanh_();
}

template <class T>
inline T act(T z, T a, MemoryActivation m) {
  return m == MemoryActivation::silu ? z * a : T(0.5) * z * (T(1) + a);
}

template <class T>
inline T act_d1(T z, T a, MemoryActivation m) {
  if (m == MemoryActivation::silu) return a * (T(1) + z * (T(1) - a));
  const T du = T(kGeluC) * (T(1) + T(3 * kGeluK) * z * z);
  return T(0.5) * (T(1) + a) + T(0.5) * z * (T(1) - a * a) * du;
}

template <class T>
inline T act_d2(T z, T a, MemoryActivation m) {
  if (m == MemoryActivation::silu) return a * (T(1) - a) * (T(2) + z * (T(1) - T(2) * a));
  const T du = T(kGeluC) * (T(1) + T(3 * kGeluK) * z * z), ddu = T(6 * kGeluC * kGeluK) * z;
  return (T(1) - a * a) * (du + T(0.5) * z * (ddu - T(2) * a * du * du));
}

template <class T>
inline T dot(const T* x, const T* y, int64_t n) {
  T s = 0;
  for (int64_t i = 0; i < n; ++i) s += x[i] * y[i];
  return s;
}

/// out[i, :] = s[i] · x[i, :] for `rows` rows of width w.
template <class T>
inline void scale_rows(const T* x, const T* s, int64_t rows, int64_t w, T* out) {
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t c = 0; c < w; ++c) out[i * w + c] = s[i] * x[i * w + c];
}

/// The soft clamp of an inner gradient of Frobenius norm x (spec.h): f(x) = G tanh(x/G) / x,
/// and g(x) = f'(x) / x, which stays finite at 0 (series below x/G = 1e-3, where the closed
/// form cancels). In double whatever T is: one value per row.
inline double clamp_factor(double x, double G) { return x > 1e-30 ? G * std::tanh(x / G) / x : 1.0; }
inline double clamp_slope(double x, double G) {
  const double y = x / G;
  if (y < 1e-3) return (-2.0 / 3.0 + 8.0 / 15.0 * y * y) / (G * G);
  const double t = std::tanh(y);
  return ((1 - t * t) * x - G * t) / (x * x * x);
}

}  // namespace attnlab::kernels::titans_cpu
