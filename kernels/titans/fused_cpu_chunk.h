// One (batch, head)'s chunk of the fused CPU Titans memory (docs/mixers/titans.md, "Fused CPU
// kernel"): the dual form of dual.cpp on raw row-major buffers with single-threaded GEMMs, and
// its hand-written backward, which recomputes the chunk's forward from the stored start state.
// The chunk starts at its anchor (τ = 0), so the key pass runs at the start weights W.
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/titans/fused_layout.h"

namespace attnlab::kernels::titans_cpu {

/// A chunk's gate coefficients (chunk_coefficients.h) for one (batch, head).
template <class T>
struct ChunkGates {
  const T* query;                                                      ///< [n, n]
  const T *query_weight, *query_surprise, *end_weight, *end_surprise;  ///< [n]
  T end_decay, end_mix, end_momentum;
};

/// Where their gradients go (overwritten, same layout).
template <class T>
struct ChunkGateGrads {
  T* query;
  T *query_weight, *query_surprise, *end_weight, *end_surprise;
  T *end_decay, *end_mix, *end_momentum;
};

using titans_fused::ChunkShape;

template <class T>
class ChunkWork {
 public:
  explicit ChunkWork(const ChunkShape& s);
  /// y [n, d] from the state (W, S) at the chunk's start; then (W, S) ← the state at its end.
  void forward(const T* q, const T* k, const T* v, const ChunkGates<T>& g, T* const* W, T* const* S, T* y);
  /// With (W, S) the start state and (dW, dS) the gradients of the end state: dq, dk, dv [n, d]
  /// and the gate gradients are written, and (dW, dS) ← the gradients of the start state.
  void backward(const T* q, const T* k, const T* v, const ChunkGates<T>& g, const T* const* W, const T* const* S,
                const T* dy, T* const* dW, T* const* dS, T* dq, T* dk, T* dv, const ChunkGateGrads<T>& dg);

 private:
  /// Layer l's input rows in the key pass (k itself for l = 0) and in the query pass (q).
  const T* act_in(size_t l) const { return l == 0 ? key_ : act_[l].data(); }
  const T* query_in(size_t l) const { return l == 0 ? query_ : query_act_[l].data(); }
  const T* update(size_t l) const { return clamped() ? u_[l].data() : delta_[l].data(); }
  bool clamped() const { return shape_.max_grad_norm > 0; }
  void key_pass(const T* k, const T* v, const T* const* W);
  /// y = nullptr (the backward's recompute): the top layer's W and S products and y are skipped.
  void query_pass(const T* q, const ChunkGates<T>& g, const T* const* W, const T* const* S, T* y);
  void hand_off(const ChunkGates<T>& g, T* const* W, T* const* S);
  void hand_off_backward(const ChunkGates<T>& g, const T* const* W, const T* const* S, T* const* dW, T* const* dS,
                         const ChunkGateGrads<T>& dg);
  void query_backward(const ChunkGates<T>& g, const T* const* W, const T* const* S, const T* dy,
                      T* const* dW, T* const* dS, T* dq, const ChunkGateGrads<T>& dg);
  void key_backward(const T* const* W, T* const* dW, T* dk, T* dv);

  ChunkShape shape_;
  const T* key_ = nullptr;    ///< this chunk's k rows (set by key_pass)
  const T* query_ = nullptr;  ///< and q rows (query_pass)
  using Buf = std::vector<T>;
  // Key pass at the anchor, per layer l (in width w_l, out width w_{l+1}): activations (act_[0]
  // is k itself), pre-activations, σ's auxiliary (tanh or sigmoid), errors Δ, Δ_{l+1} W_{l+1}ᵀ,
  // the clamped updates and the clamp's row norms and factors.
  std::vector<Buf> act_, z_, z_aux_, delta_, delta_in_, u_, a_norm_, d_norm_, factor_;
  // Query pass: activations (query_act_[0] is q), pre-activations and their σ auxiliary, q·aᵀ
  // scores M and the coefficient-weighted scores N.
  std::vector<Buf> query_act_, query_z_, query_aux_, scores_, weighted_;
  // Scratch (rows_a_ and rows_b_ also hold the query pass's Â W and Â S, which nothing keeps).
  std::vector<Buf> d_act_, d_update_, d_z_, d_delta_;
  Buf d_query_z_, d_query_act_, rows_a_, rows_b_, proj_e_, proj_f_, d_scores_, d_weighted_;
};

}  // namespace attnlab::kernels::titans_cpu
