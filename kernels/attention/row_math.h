// Row operations of the tiled attention kernel written so the compiler vectorises them
// (docs/kernels/attention.md, "Speed"): an exp for fp32 without a libm call (Cody–Waite range
// reduction and a degree-6 polynomial: relative error about 2e-7, fine for fp32 accumulation;
// fp64 keeps std::exp so the fp64 tests see the exact function), and `omp simd` reductions
// (the files that include this are compiled with -fopenmp-simd; no OpenMP runtime is used).
// Each instruction-set copy of the tiles gets its own, inside namespace ATTNLAB_ISA (tile_entry.h).
#pragma once
#ifndef ATTNLAB_ISA
#error "row_math.h is compiled per instruction set: the build defines ATTNLAB_ISA (kernels/CMakeLists.txt)"
#endif
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#include "kernels/attention/tile_plan.h"

namespace attnlab::kernels::detail::ATTNLAB_ISA {

/// e^x; exactly 0 for x ≤ −88 (so −∞ gives 0), saturating at x = 88.
inline float exp_fast(float x) {
  const bool zero = x <= -88.0f;
  x = std::min(std::max(x, -87.0f), 88.0f);
  const float n = (x * 1.44269504089f + 12582912.0f) - 12582912.0f;  // round(x / ln 2), 1.5·2^23 trick
  const float r = (x - n * 0.693145751953125f) - n * 1.428606765330187e-06f;  // ln 2 in two parts
  const float p =
      1.0f + r * (1.0f + r * (0.5f + r * (0.166666672f + r * (0.0416666679f + r * (0.00833333377f + r * 0.00138888892f)))));
  const float scale = std::bit_cast<float>((static_cast<int32_t>(n) + 127) << 23);
  return zero ? 0.0f : p * scale;
}
inline double exp_fast(double x) { return std::exp(x); }

template <class T>
T sigmoid_fast(T z) {
  return T(1) / (T(1) + exp_fast(-z));
}

/// row[c] ← scale·row[c] + bias[c] (bias may be null).
template <class T>
void logits(T* row, int64_t n, T scale, const T* bias) {
  if (bias) {
#pragma omp simd
    for (int64_t c = 0; c < n; ++c) row[c] = scale * row[c] + bias[c];
  } else {
#pragma omp simd
    for (int64_t c = 0; c < n; ++c) row[c] *= scale;
  }
}

/// The largest visible entry of a row (vis null: all visible); −∞ when none is.
template <class T>
T row_max(const T* row, int64_t n, const Visible* vis) {
  T m = -std::numeric_limits<T>::infinity();
  if (vis) {
#pragma omp simd reduction(max : m)
    for (int64_t c = 0; c < n; ++c) m = std::max(m, vis[c] ? row[c] : -std::numeric_limits<T>::infinity());
  } else {
#pragma omp simd reduction(max : m)
    for (int64_t c = 0; c < n; ++c) m = std::max(m, row[c]);
  }
  return m;
}

/// row[c] ← e^{row[c] − shift} (0 where hidden); returns the row sum.
template <class T>
T exp_row(T* row, int64_t n, T shift, const Visible* vis) {
  T sum = 0;
  if (vis) {
#pragma omp simd reduction(+ : sum)
    for (int64_t c = 0; c < n; ++c) {
      const T p = vis[c] ? exp_fast(row[c] - shift) : T(0);
      row[c] = p;
      sum += p;
    }
  } else {
#pragma omp simd reduction(+ : sum)
    for (int64_t c = 0; c < n; ++c) {
      row[c] = exp_fast(row[c] - shift);
      sum += row[c];
    }
  }
  return sum;
}

/// row[c] ← σ(row[c] + b) (0 where hidden).
template <class T>
void sigmoid_row(T* row, int64_t n, T b, const Visible* vis) {
  if (vis) {
#pragma omp simd
    for (int64_t c = 0; c < n; ++c) row[c] = vis[c] ? sigmoid_fast(row[c] + b) : T(0);
  } else {
#pragma omp simd
    for (int64_t c = 0; c < n; ++c) row[c] = sigmoid_fast(row[c] + b);
  }
}

}  // namespace attnlab::kernels::detail::ATTNLAB_ISA
