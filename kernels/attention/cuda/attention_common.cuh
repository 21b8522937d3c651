// Shared by the CUDA attention kernels (attention_forward.cu, attention_backward.cu): the
// spec's masks as raw device pointers, the visibility test of AttentionSpec (kernels/attention/
// spec.h), dtype loads, and the block layout (docs/kernels/attention.md, "CUDA").
//
// Layout: a block owns 32 rows (query rows in the forward and dq kernels, key rows in the dk/dv
// kernel) with 4 threads per row; thread `lane` of a row holds the head dimensions
// x·4 + lane, so the 4 threads of a row read 4 consecutive words of a shared-memory tile (no
// bank conflicts) and a dot product is 4 partial sums joined by two shuffles. Every thread of a
// warp runs every shuffle; masks are applied after them, so no shuffle is ever divergent.
#pragma once
#include <ATen/core/Tensor.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "kernels/attention/spec.h"

namespace attnlab::kernels::cuda_attention {

constexpr int kLanes = 4;                  ///< threads per row
constexpr int kRows = 32;                  ///< rows per block
constexpr int kThreads = kRows * kLanes;   ///< 128
constexpr int kTile = 32;                  ///< rows of the other side per shared-memory tile
constexpr int64_t kNoBound = INT64_MAX;    ///< key_until when there is none

__device__ __forceinline__ float load(const float* p, int64_t i) { return p[i]; }
__device__ __forceinline__ float load(const at::BFloat16* p, int64_t i) {
  return __bfloat162float(reinterpret_cast<const __nv_bfloat16*>(p)[i]);
}
__device__ __forceinline__ float load(const at::Half* p, int64_t i) {
  return __half2float(reinterpret_cast<const __half*>(p)[i]);
}
__device__ __forceinline__ void store(float* p, int64_t i, float x) { p[i] = x; }
__device__ __forceinline__ void store(at::BFloat16* p, int64_t i, float x) {
  reinterpret_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16(x);
}
__device__ __forceinline__ void store(at::Half* p, int64_t i, float x) {
  reinterpret_cast<__half*>(p)[i] = __float2half(x);
}

/// The sum of a row's 4 partial sums, on all 4 of its threads.
__device__ __forceinline__ float row_sum(float s) {
  s += __shfl_xor_sync(0xffffffffu, s, 1);
  return s + __shfl_xor_sync(0xffffffffu, s, 2);
}

struct Dims {
  int64_t B, H, Hkv, Tq, Tk, d;
  float scale, sigmoid_bias;
  bool sigmoid;
  __host__ __device__ int64_t group() const { return H / Hkv; }
};

/// AttentionSpec's masks on the device. Positions are [B or 1, T] (pos_bs = T or 0).
struct Mask {
  const int64_t *q_pos = nullptr, *k_pos = nullptr;
  int64_t q_pos_bs = 0, k_pos_bs = 0;
  const int64_t *q_doc = nullptr, *k_doc = nullptr;  ///< [B, Tq], [B, Tk] or none
  int64_t window = 0, sinks = 0;
  const bool* keep = nullptr;  ///< [B, Hkv, keep_rows, keep_blocks]
  int64_t keep_rows = 0, keep_blocks = 0, keep_block = 1;
  const int64_t* until = nullptr;   ///< [B, Hkv, Tk]
  const bool* active = nullptr;     ///< [B, H, Tq]
};

/// What one query row and one key carry into the visibility test.
struct QueryRow {
  int64_t i, pos, doc;
};
struct KeyCol {
  int64_t j, pos, doc, until;
};

/// AttentionSpec's rule for query row q and key col k of batch b, kv head g (active rows are
/// tested by the callers, once per row).
__device__ __forceinline__ bool visible(const Mask& m, const Dims& n, int64_t b, int64_t g, const QueryRow& q,
                                        const KeyCol& k) {
  if (k.pos > q.pos) return false;
  if (m.window > 0 && q.pos - k.pos >= m.window && k.pos >= m.sinks) return false;
  if (m.q_doc && q.doc != k.doc) return false;
  if (q.pos >= k.until) return false;
  if (m.keep) {
    const int64_t row = m.keep_rows == 1 ? 0 : q.i;
    if (!m.keep[((b * n.Hkv + g) * m.keep_rows + row) * m.keep_blocks + k.j / m.keep_block]) return false;
  }
  return true;
}

__device__ __forceinline__ QueryRow query_row(const Mask& m, int64_t b, int64_t i, int64_t Tq) {
  return {i, m.q_pos[b * m.q_pos_bs + i], m.q_doc ? m.q_doc[b * Tq + i] : 0};
}
__device__ __forceinline__ KeyCol key_col(const Mask& m, const Dims& n, int64_t b, int64_t g, int64_t j) {
  return {j, m.k_pos[b * m.k_pos_bs + j], m.k_doc ? m.k_doc[b * n.Tk + j] : 0,
          m.until ? m.until[(b * n.Hkv + g) * n.Tk + j] : kNoBound};
}

/// Bounds of a set of rows (the valid and active ones): a tile pair whose bounds exclude every
/// visible pair is skipped without touching K, V, Q or dO (the causal, window, document and
/// key_until parts of the rule; keep blocks are tested per element).
struct Bounds {
  int64_t pos_min, pos_max, doc_min, doc_max, until_max;
  bool any;
};

__device__ __forceinline__ Bounds empty_bounds() { return {INT64_MAX, INT64_MIN, INT64_MAX, INT64_MIN, INT64_MIN, false}; }

__device__ __forceinline__ int64_t lower(int64_t a, int64_t b) { return a < b ? a : b; }
__device__ __forceinline__ int64_t upper(int64_t a, int64_t b) { return a > b ? a : b; }

__device__ __forceinline__ void widen(Bounds& b, int64_t pos, int64_t doc, int64_t until) {
  b.pos_min = lower(b.pos_min, pos), b.pos_max = upper(b.pos_max, pos);
  b.doc_min = lower(b.doc_min, doc), b.doc_max = upper(b.doc_max, doc);
  b.until_max = upper(b.until_max, until), b.any = true;
}

/// Thread 0 of a block: the bounds of the live entries among n rows or n keys in shared memory.
__device__ inline void reduce_bounds(const QueryRow* rows, const bool* live, int n, Bounds* out) {
  Bounds b = empty_bounds();
  for (int r = 0; r < n; ++r)
    if (live[r]) widen(b, rows[r].pos, rows[r].doc, 0);
  *out = b;
}
__device__ inline void reduce_bounds(const KeyCol* cols, const bool* live, int n, Bounds* out) {
  Bounds b = empty_bounds();
  for (int c = 0; c < n; ++c)
    if (live[c]) widen(b, cols[c].pos, cols[c].doc, cols[c].until);
  *out = b;
}

/// Whether no query of `qs` can see any key of `ks`.
__device__ __forceinline__ bool disjoint(const Mask& m, const Bounds& qs, const Bounds& ks) {
  if (!qs.any || !ks.any) return true;
  if (ks.pos_min > qs.pos_max) return true;                                             // all keys later
  if (m.window > 0 && qs.pos_min - ks.pos_max >= m.window && ks.pos_min >= m.sinks) return true;  // out of window
  if (m.q_doc && (ks.doc_max < qs.doc_min || ks.doc_min > qs.doc_max)) return true;    // other documents
  if (ks.until_max <= qs.pos_min) return true;                                          // all pushed out
  return false;
}

/// Shared memory for kTile rows of two [·, d] matrices (K and V, or Q and dO), zero-padded to D.
template <int D>
struct PairTile {
  float a[kTile][D], b[kTile][D];
};

/// Every thread of the block: rows r0.. (of `rows`, from row `base` of x and y) into t.
template <class T, int D>
__device__ void load_pair(PairTile<D>& t, const T* x, const T* y, int64_t base, int64_t r0, int64_t rows, int64_t d) {
  for (int e = threadIdx.x; e < kTile * D; e += kThreads) {
    const int c = e / D, dd = e % D;
    const bool in = r0 + c < rows && dd < d;
    t.a[c][dd] = in ? load(x, (base + r0 + c) * d + dd) : 0.f;
    t.b[c][dd] = in ? load(y, (base + r0 + c) * d + dd) : 0.f;
  }
}

/// The rows of a forward or dq block and the bounds of its live ones.
struct RowBlock {
  QueryRow rows[kRows];
  bool live[kRows];
  Bounds bounds;
};

/// Every thread: publishes its row (lane 0 of each) and thread 0 their bounds, which the other
/// threads read after the next barrier (load_key_tile's first).
__device__ inline void publish_rows(RowBlock& rb, int r, const QueryRow& row, bool live) {
  if (threadIdx.x % kLanes == 0) rb.rows[r] = row, rb.live[r] = live;
  __syncthreads();
  if (threadIdx.x == 0) reduce_bounds(rb.rows, rb.live, kRows, &rb.bounds);
}

/// One tile of kTile keys: K and V, their visibility data and bias, and their bounds.
template <int D>
struct KeyTile {
  PairTile<D> kv;
  KeyCol cols[kTile];
  float bias[kTile];
  bool ok[kTile];
  Bounds bounds;
};

/// Every thread of the block, once per key tile: keys j0.. of (b, g) into t unless their bounds
/// exclude every pair with the block's rows; returns whether they were loaded (the same answer
/// on every thread, so a skipped tile keeps the block in step).
template <class T, int D>
__device__ bool load_key_tile(KeyTile<D>& t, const T* k, const T* v, const float* bias, const Dims& n, const Mask& m,
                              int64_t b, int64_t g, int64_t j0, const Bounds& rows) {
  const int64_t kv = (b * n.Hkv + g) * n.Tk;
  __syncthreads();  // the previous tile is consumed and the rows' bounds are written
  if (threadIdx.x < kTile) {
    const int64_t j = j0 + threadIdx.x;
    t.ok[threadIdx.x] = j < n.Tk;
    if (j < n.Tk) t.cols[threadIdx.x] = key_col(m, n, b, g, j), t.bias[threadIdx.x] = bias ? bias[kv + j] : 0.f;
  }
  __syncthreads();
  if (threadIdx.x == 0) reduce_bounds(t.cols, t.ok, kTile, &t.bounds);
  __syncthreads();
  if (disjoint(m, rows, t.bounds)) return false;
  load_pair(t.kv, k, v, kv, j0, n.Tk, n.d);
  __syncthreads();
  return true;
}

/// The device copies of a spec's tensors (kept alive for the launches) and their pointers.
struct DeviceSpec {
  at::Tensor q_pos, k_pos, q_doc, k_doc, keep, until, active;
  Mask mask;
  Dims dims;
};

/// Checks q [B, H, Tq, d], k, v [B, Hkv, Tk, d], key_bias and every spec tensor, and moves the
/// spec's tensors to q's device in the kernels' dtypes (attention_forward.cu).
DeviceSpec device_spec(const at::Tensor& q, const at::Tensor& k, const at::Tensor& key_bias, const AttentionSpec& s);

}  // namespace attnlab::kernels::cuda_attention
