// Shared pieces of the tiled CPU attention forward and backward (docs/kernels/attention.md):
// aligned scratch, row gathers and the score transforms. The tile GEMMs call the BLAS directly
// (kernels/common/cpu_blas.h; single-threaded inside at::parallel_for), without at::mm's
// dispatch and tensor allocation, which cost more than a 32 × 16 tile's product. Included only
// by the files compiled once per instruction set, inside that copy's namespace ATTNLAB_ISA
// (tile_entry.h).
// Internal to kernels/attention/.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <new>
#include <vector>

#include "kernels/attention/row_math.h"
#include "kernels/common/cpu_blas.h"
#include "kernels/attention/tile_entry.h"
#include "kernels/attention/tile_plan.h"

namespace attnlab::kernels::detail::ATTNLAB_ISA {

/// Scratch on 64-byte boundaries (a cache line, an AVX-512 vector): glibc's malloc aligns to 16
/// bytes, and a tile row that straddles cache lines costs the vector loops split loads.
template <class T>
struct CacheLineAllocator {
  using value_type = T;
  CacheLineAllocator() = default;
  template <class U>
  CacheLineAllocator(const CacheLineAllocator<U>&) {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(64))); }
  void deallocate(T* p, std::size_t) { ::operator delete(p, std::align_val_t(64)); }
  template <class U>
  bool operator==(const CacheLineAllocator<U>&) const { return true; }
};
template <class T>
using AlignedBuffer = std::vector<T, CacheLineAllocator<T>>;

/// The rows of `rt` from `base` ([T, d] of one head): a pointer into base when they are
/// consecutive, else a copy gathered into buf.
template <class T>
const T* gather_rows(const T* base, const RowTile& rt, int64_t d, T* buf) {
  if (rt.contiguous) return base + rt.rows[0] * d;
  for (int64_t a = 0; a < rt.n; ++a) std::memcpy(buf + a * d, base + rt.rows[a] * d, d * sizeof(T));
  return buf;
}

/// vis[a·ld + c] = query rt.rows[a] sees key j0 + c of (b, g) (the plan's element rule);
/// returns whether any does. Branch-free per row, so the column loop vectorises: without
/// documents both id arrays are 0 (always equal), without a window the limit never binds.
inline bool fill_mask(const TilePlan& plan, int64_t b, int64_t g, const RowTile& rt, int64_t j0, int64_t cols,
                      Visible* vis, int64_t ld) {
  const MaskInputs m = plan.mask_inputs(b, g, j0);
  const int64_t *kp = m.k_pos, *kd = m.k_doc, limit = m.limit, sinks = m.sinks;
  const bool one_block = j0 / m.keep_block == (j0 + cols - 1) / m.keep_block;
  bool any = false;
  for (int64_t a = 0; a < rt.n; ++a) {
    const int64_t i = rt.rows[a], qp = m.q_pos[i], qd = m.q_doc[i];
    Visible* out = vis + a * ld;
    const uint8_t* krow = m.keep ? m.keep + (m.keep_rows == 1 ? 0 : i) * m.keep_blocks : nullptr;
    if (krow && one_block && !krow[j0 / m.keep_block]) {  // the whole row of the tile is one unkept block
      std::fill(out, out + cols, Visible(0));
      continue;
    }
    Visible row_any = 0;
#pragma omp simd reduction(| : row_any)
    for (int64_t c = 0; c < cols; ++c) {
      const Visible v = (kp[c] <= qp) & ((qp - kp[c] < limit) | (kp[c] < sinks)) & (kd[c] == qd);
      out[c] = v;
      row_any |= v;
    }
    if (m.until) {
      row_any = 0;
#pragma omp simd reduction(| : row_any)
      for (int64_t c = 0; c < cols; ++c) row_any |= (out[c] &= static_cast<Visible>(qp < m.until[c]));
    }
    if (krow && !one_block) {
      row_any = 0;
      for (int64_t c = 0; c < cols; ++c) row_any |= (out[c] &= static_cast<Visible>(krow[(j0 + c) / m.keep_block]));
    }
    any = any || row_any;
  }
  return any;
}

/// Turns a tile of raw products s = q·k (rows × cols, leading dim ld) into logits
/// z = scale·s + key_bias and then into weights: σ(z + b) (sigmoid) or e^{z − L_a} (softmax, from
/// the stored log-sum-exp). Hidden entries become exactly 0. `vis` is null for a fully visible tile.
template <class T>
void weights(const Tensors<T>& in, T* s, int64_t rows, int64_t cols, int64_t ld, const T* bias, const Visible* vis,
             const T* lse) {
  for (int64_t a = 0; a < rows; ++a) {
    T* row = s + a * ld;
    const Visible* v = vis ? vis + a * ld : nullptr;
    logits(row, cols, in.scale, bias);
    if (in.sigmoid) sigmoid_row(row, cols, in.sigmoid_bias, v);
    else exp_row(row, cols, lse[a], v);
  }
}

}  // namespace attnlab::kernels::detail::ATTNLAB_ISA
