// Per-(batch, head) building blocks of the fused CPU kernel (fused_cpu_*.cpp; the GEMM is
// kernels/common/cpu_blas.h): the intra-chunk score block with the sub-chunk trick
// (docs/kernels/linear.md, "Chunked form"). All buffers are row-major; `ell` is the in-chunk
// cumulative log-gate [L, dk]. Every exp argument is later-minus-earlier (≤ 0).
#pragma once
#include <ATen/ops/exp.h>
#include <ATen/ops/from_blob.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/common/cpu_blas.h"

namespace attnlab::kernels::cpu {

/// x ← exp(x) over n contiguous values with ATen's vectorised CPU kernel (AVX2/AVX-512 chosen
/// at run time; this file is compiled for baseline x86-64, so a scalar std::exp loop is the
/// bottleneck otherwise: measured in docs/benchmarks.md).
template <class T>
inline void exp_inplace(T* x, int64_t n) {
  if (n > 0) at::from_blob(x, {n}, at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value)).exp_();
}

/// out[i] = x[i] ⊙ e^{ell[i] − r} (sign +1: rows at or after r) or x[i] ⊙ e^{r − ell[i]}
/// (sign −1: rows at or before r), for `rows` rows of width dk. Both exponents are ≤ 0.
/// x = nullptr gives the factors alone.
template <class T>
void rebase(const T* x, const T* ell, const T* r, int64_t rows, int64_t dk, int sign, T* out) {
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t d = 0; d < dk; ++d) out[i * dk + d] = sign * (ell[i * dk + d] - r[d]);
  exp_inplace(out, rows * dk);
  if (x)
    for (int64_t i = 0; i < rows * dk; ++i) out[i] *= x[i];
}

/// E[(a − i0)·c + (m − i0)] [dk] = e^{ell_a − ell_m} for i0 ≤ m ≤ a < i1 (entries m > a hold 1).
template <class T>
void diagonal_decays(const T* ell, int64_t i0, int64_t i1, int64_t c, int64_t dk, T* E) {
  for (int64_t a = i0; a < i1; ++a)
    for (int64_t m = i0; m < i1; ++m) {
      T* e = E + ((a - i0) * c + (m - i0)) * dk;
      for (int64_t d = 0; d < dk; ++d) e[d] = m <= a ? ell[a * dk + d] - ell[m * dk + d] : T(0);
    }
  exp_inplace(E, (i1 - i0) * c * dk);
}

/// Off-diagonal sub-blocks of the scaled intra-chunk scores: A[a, m] for m < start of a's
/// sub-chunk, via one GEMM per query sub-chunk on operands rebased at r = ell[i0]:
///   A[i rows, 0:i0] = scale · (q ⊙ e^{ell − r}) (k ⊙ e^{r − ell})ᵀ.
/// Writes only those entries of A (ld = lda). qr [c, dk] and kr [L, dk] are scratch.
template <class T>
void intra_scores_off_diagonal(const T* q, const T* k, const T* ell, int64_t L, int64_t dk,
                               int64_t c, T scale, T* A, int64_t lda, T* qr, T* kr) {
  for (int64_t i0 = c; i0 < L; i0 += c) {
    const int64_t rows = std::min(c, L - i0);
    const T* r = ell + i0 * dk;
    rebase(q + i0 * dk, ell + i0 * dk, r, rows, dk, +1, qr);
    rebase(k, ell, r, i0, dk, -1, kr);
    gemm<T>(false, true, rows, i0, dk, scale, qr, dk, kr, dk, T(0), A + i0 * lda, lda);
  }
}

/// Diagonal sub-blocks, exact elementwise: A[a, m] = scale·Σ_d q_a k_m e^{ell_a − ell_m}, m ≤ a.
/// E [c·c·dk] is scratch.
template <class T>
void intra_scores_diagonal(const T* q, const T* k, const T* ell, int64_t L, int64_t dk, int64_t c,
                           T scale, T* A, int64_t lda, T* E) {
  for (int64_t i0 = 0; i0 < L; i0 += c) {
    const int64_t i1 = std::min(i0 + c, L);
    diagonal_decays(ell, i0, i1, c, dk, E);
    for (int64_t a = i0; a < i1; ++a)
      for (int64_t m = i0; m <= a; ++m) {
        const T* e = E + ((a - i0) * c + (m - i0)) * dk;
        T acc = 0;
        for (int64_t d = 0; d < dk; ++d) acc += q[a * dk + d] * k[m * dk + d] * e[d];
        A[a * lda + m] = scale * acc;
      }
  }
}

/// In-chunk cumulative log-gate: ell[j] = Σ_{i ≤ j} g[i], rows [L, dk].
template <class T>
void chunk_cumsum(const T* g, int64_t L, int64_t dk, T* ell) {
  for (int64_t d = 0; d < dk; ++d) ell[d] = g[d];
  for (int64_t j = 1; j < L; ++j)
    for (int64_t d = 0; d < dk; ++d) ell[j * dk + d] = ell[(j - 1) * dk + d] + g[j * dk + d];
}

/// S ← Diag(e^{ell_L}) S + (k ⊙ e^{ell_L − ell})ᵀ V for one chunk. kd [L, dk] is scratch.
template <class T>
void advance_state(const T* k, const T* v, const T* ell, int64_t L, int64_t dk, int64_t dv, T* S,
                   T* kd) {
  const T* last = ell + (L - 1) * dk;
  rebase(k, ell, last, L, dk, -1, kd);
  for (int64_t d = 0; d < dk; ++d) {
    const T decay = std::exp(last[d]);
    for (int64_t e = 0; e < dv; ++e) S[d * dv + e] *= decay;
  }
  gemm<T>(true, false, dk, dv, L, T(1), kd, dk, v, dv, T(1), S, dv);
}

}  // namespace attnlab::kernels::cpu
