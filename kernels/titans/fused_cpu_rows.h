// Row helpers of the fused CPU Titans memory (fused_cpu_chunk.h): the activation's auxiliary
// value for a block of pre-activations (memory_math.h has σ, σ', σ'' from it), which ATen's
// vectorised kernels compute for a whole block at once (a scalar tanh loop would cost more than
// the chunk's GEMMs), dot products, row scaling and the gradient clamp.
#pragma once
#include <ATen/ops/from_blob.h>
#include <ATen/ops/sigmoid.h>
#include <ATen/ops/tanh.h>

#include <cmath>
#include <cstdint>

#include "kernels/titans/memory_math.h"

namespace attnlab::kernels::titans_cpu {

using titans_math::act;
using titans_math::act_d1;
using titans_math::act_d2;

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
  for (int64_t i = 0; i < n; ++i) aux[i] = titans_math::gelu_inner(z[i]);
  at::from_blob(aux, {n}, opts).tanh_();
}

/// out[i] = σ(z[i]), keeping σ's auxiliary in aux for the derivatives.
template <class T>
void activate(const T* z, int64_t n, MemoryActivation m, T* aux, T* out) {
  activation_aux(z, n, m, aux);
  for (int64_t i = 0; i < n; ++i) out[i] = act(z[i], aux[i], m);
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
