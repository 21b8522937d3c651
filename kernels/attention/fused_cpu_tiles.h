// Shared pieces of the tiled CPU attention forward and backward (docs/kernels/attention.md):
// raw pointers of one call, tile views for at::mm, row gathers and the score transforms.
// Internal to kernels/attention/.
#pragma once
#include <ATen/ops/from_blob.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "kernels/attention/row_math.h"
#include "kernels/attention/tile_plan.h"

namespace attnlab::kernels::detail {

/// One call's contiguous tensors: q, o [B, H, Tq, d]; k, v [B, Hkv, Tk, d]; key_bias [B, Hkv, Tk]
/// or null; lse [B, H, Tq] (softmax only).
template <class T>
struct Tensors {
  const T *q, *k, *v, *key_bias;
  int64_t d;
  T scale, sigmoid_bias;
  bool sigmoid;
};

/// A row-major [rows, cols] view of raw memory with leading dimension `ld`, for tile GEMMs
/// (at::mm inside at::parallel_for runs on the calling thread).
template <class T>
at::Tensor view(const T* p, int64_t rows, int64_t cols, int64_t ld) {
  return at::from_blob(const_cast<T*>(p), {rows, cols}, {ld, 1},
                       at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value));
}

/// The rows of `rt` from `base` ([T, d] of one head): a pointer into base when they are
/// consecutive, else a copy gathered into buf.
template <class T>
const T* gather_rows(const T* base, const RowTile& rt, int64_t d, T* buf) {
  if (rt.contiguous) return base + rt.rows[0] * d;
  for (int64_t a = 0; a < rt.n; ++a) std::memcpy(buf + a * d, base + rt.rows[a] * d, d * sizeof(T));
  return buf;
}

/// Turns a tile of raw products s = q·k (rows × cols, leading dim ld) into logits
/// z = scale·s + key_bias and then into weights: σ(z + b) (sigmoid) or e^{z − L_a} (softmax, from
/// the stored log-sum-exp). Hidden entries become exactly 0. `vis` is null for a fully visible tile.
template <class T>
void weights(const Tensors<T>& in, T* s, int64_t rows, int64_t cols, int64_t ld, const T* bias, const uint8_t* vis,
             const T* lse) {
  for (int64_t a = 0; a < rows; ++a) {
    T* row = s + a * ld;
    const uint8_t* v = vis ? vis + a * ld : nullptr;
    logits(row, cols, in.scale, bias);
    if (in.sigmoid) sigmoid_row(row, cols, in.sigmoid_bias, v);
    else exp_row(row, cols, lse[a], v);
  }
}

template <class T>
void forward_tiles(const Tensors<T>& in, const TilePlan& plan, T* o, T* lse);
template <class T>
void backward_tiles(const Tensors<T>& in, const TilePlan& plan, const T* o, const T* lse, const T* dout, T* dq, T* dk,
                    T* dv, T* dbias);

}  // namespace attnlab::kernels::detail
