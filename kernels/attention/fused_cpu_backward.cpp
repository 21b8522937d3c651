// Tiled CPU attention backward (docs/kernels/attention.md, "Tiled CPU kernel"). P is recomputed
// per tile pair, from the stored log-sum-exp (softmax) or directly (sigmoid). With enough
// (batch, kv head) pairs, one pass parallel over them computes dQ, dK, dV and the key-bias
// gradient together; otherwise dQ runs parallel over query tiles, and dK, dV and the key-bias
// gradient parallel over (batch, kv head, key tile), summing the G query heads of the kv head
// in place. Either way no two threads write one row.
#include <ATen/Parallel.h>

#include <vector>

#include "kernels/attention/fused_cpu_tiles.h"

namespace attnlab::kernels::detail::ATTNLAB_ISA {
namespace {

template <class T>
T dot(const T* a, const T* b, int64_t n) {
  T s = 0;
  for (int64_t x = 0; x < n; ++x) s += a[x] * b[x];
  return s;
}

/// Per-thread buffers for one tile pair.
template <class T>
struct Scratch {
  Scratch(int64_t Br, int64_t Bc, int64_t d)
      : q(Br * d), dout(Br * d), p(Br * Bc), ds(Br * Bc), lse(Br), D(Br), vis(Br * Bc) {}
  AlignedBuffer<T> q, dout, p, ds, lse, D;
  AlignedBuffer<Visible> vis;
};

}  // namespace

template <class T>
void backward_tiles(const Tensors<T>& in, const TilePlan& plan, const T* o, const T* lse, const T* dout, T* dq, T* dk,
                    T* dv, T* dbias) {
  const int64_t d = in.d, Br = plan.Br, Bc = plan.Bc, Tq = plan.Tq, Tk = plan.Tk;
  AlignedBuffer<T> Drow;  // softmax: D_i = rowsum(dO_i ∘ O_i); sigmoid has no such term
  if (!in.sigmoid) {
    Drow.resize(plan.B * plan.H * Tq);
    at::parallel_for(0, plan.B * plan.H * Tq, 1024, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) Drow[r] = dot(dout + r * d, o + r * d, d);
    });
  }
  // P and dS of the rows of `rt` (head bh) against keys [j0, j0 + cols) into sc.p and sc.ds;
  // false when no entry is visible. Leaves the gathered Q and dO rows in qt and dot_.
  auto tile_grads = [&](Scratch<T>& sc, int64_t bh, const RowTile& rt, int64_t j0, int64_t cols, const T*& qt,
                        const T*& dot_) {
    const int64_t b = bh / plan.H, g = (bh % plan.H) / plan.group(), kvb = b * plan.Hkv + g, rows = rt.n;
    const TileKind kind = plan.classify(b, g, rt, j0, cols);
    if (kind == TileKind::skip) return false;
    if (kind == TileKind::partial && !fill_mask(plan, b, g, rt, j0, cols, sc.vis.data(), Bc)) return false;
    qt = gather_rows(in.q + bh * Tq * d, rt, d, sc.q.data());
    dot_ = gather_rows(dout + bh * Tq * d, rt, d, sc.dout.data());
    for (int64_t a = 0; a < rows; ++a) {
      const int64_t r = bh * Tq + rt.rows[a];
      sc.lse[a] = in.sigmoid ? T(0) : lse[r];
      sc.D[a] = in.sigmoid ? T(0) : Drow[r];
    }
    cpu::gemm<T>(false, true, rows, cols, d, T(1), qt, d, in.k + (kvb * Tk + j0) * d, d, T(0), sc.p.data(), Bc);
    weights(in, sc.p.data(), rows, cols, Bc, in.key_bias ? in.key_bias + kvb * Tk + j0 : nullptr,
            kind == TileKind::partial ? sc.vis.data() : nullptr, sc.lse.data());
    cpu::gemm<T>(false, true, rows, cols, d, T(1), dot_, d, in.v + (kvb * Tk + j0) * d, d, T(0), sc.ds.data(), Bc);
    for (int64_t a = 0; a < rows; ++a) {  // dS (hidden entries have p = 0)
      const T* p = sc.p.data() + a * Bc;
      T* ds = sc.ds.data() + a * Bc;
      const T Da = sc.D[a];
      if (in.sigmoid) {
#pragma omp simd
        for (int64_t c = 0; c < cols; ++c) ds[c] = ds[c] * p[c] * (T(1) - p[c]);
      } else {
#pragma omp simd
        for (int64_t c = 0; c < cols; ++c) ds[c] = p[c] * (ds[c] - Da);
      }
    }
    return true;
  };

  // dK_J += scale·dSᵀ Q_I, dV_J += Pᵀ dO_I and the key-bias sums of one tile pair.
  auto key_grads = [&](const Scratch<T>& sc, int64_t kvb, const RowTile& rt, int64_t j0, int64_t cols, const T* qt,
                       const T* dot_) {
    cpu::gemm<T>(true, false, cols, d, rt.n, T(1), sc.p.data(), Bc, dot_, d, T(1), dv + (kvb * Tk + j0) * d, d);
    cpu::gemm<T>(true, false, cols, d, rt.n, T(in.scale), sc.ds.data(), Bc, qt, d, T(1), dk + (kvb * Tk + j0) * d, d);
    if (dbias) {  // the bias is per key: its gradient sums dS over the query rows
      T* db = dbias + kvb * Tk + j0;
      for (int64_t a = 0; a < rt.n; ++a) {
        const T* ds = sc.ds.data() + a * Bc;
#pragma omp simd
        for (int64_t c = 0; c < cols; ++c) db[c] += ds[c];
      }
    }
  };

  // dQ_I += scale·dS K_J of one tile pair, straight into dq's rows when they are consecutive,
  // else through `buf` [Br, d].
  auto query_grads = [&](const Scratch<T>& sc, int64_t bh, int64_t kvb, const RowTile& rt, int64_t j0, int64_t cols,
                         T* buf) {
    const T* k_j = in.k + (kvb * Tk + j0) * d;
    if (rt.contiguous) {
      cpu::gemm<T>(false, false, rt.n, d, cols, T(in.scale), sc.ds.data(), Bc, k_j, d, T(1),
                   dq + (bh * Tq + rt.rows[0]) * d, d);
      return;
    }
    cpu::gemm<T>(false, false, rt.n, d, cols, T(1), sc.ds.data(), Bc, k_j, d, T(0), buf, d);
    for (int64_t a = 0; a < rt.n; ++a) {
      T* row = dq + (bh * Tq + rt.rows[a]) * d;
      for (int64_t x = 0; x < d; ++x) row[x] += in.scale * buf[a * d + x];
    }
  };

  // One pass when there are enough (batch, kv head) pairs to keep every thread busy: a work
  // item owns its kv head's dK, dV and the dQ rows of its query heads, so each tile pair's P and
  // dS are computed once (5 tile GEMMs instead of 7, and the row work once instead of twice).
  if (plan.B * plan.Hkv >= 2 * at::get_num_threads()) {
    at::parallel_for(0, plan.B * plan.Hkv, 1, [&](int64_t begin, int64_t end) {
      Scratch<T> sc(Br, Bc, d);
      AlignedBuffer<T> dq_rows(Br * d);
      for (int64_t kvb = begin; kvb < end; ++kvb) {
        const int64_t b = kvb / plan.Hkv, g = kvb % plan.Hkv;
        // Key tiles in groups of kKeyGroup: a row tile's dQ stays in cache across the group, and
        // the group's dK, dV (8·Bc keys × d × 2: 1 MB at 256 × 64 fp32) near it, instead of dQ
        // streaming through memory once per key tile at long T (measured: docs/benchmarks.md).
        constexpr int64_t kKeyGroup = 8;
        for (int64_t jg = 0; jg < Tk; jg += kKeyGroup * Bc) {
          for (int64_t h = g * plan.group(); h < (g + 1) * plan.group(); ++h) {
            const int64_t bh = b * plan.H + h;
            for (int64_t t = 0; t < plan.row_tiles(bh); ++t) {
              const RowTile& rt = plan.row_tile(bh, t);
              for (int64_t j0 = jg; j0 < std::min(Tk, jg + kKeyGroup * Bc); j0 += Bc) {
                const int64_t cols = std::min(Bc, Tk - j0);
                const T *qt = nullptr, *dot_ = nullptr;
                if (!tile_grads(sc, bh, rt, j0, cols, qt, dot_)) continue;
                key_grads(sc, kvb, rt, j0, cols, qt, dot_);
                query_grads(sc, bh, kvb, rt, j0, cols, dq_rows.data());
              }
            }
          }
        }
      }
    });
    return;
  }

  // Two passes otherwise (few kv heads: decoding, MQA at small batch): dQ parallel over query
  // tiles, then dK/dV parallel over key tiles.
  const auto& work = plan.work();
  at::parallel_for(0, static_cast<int64_t>(work.size()), 1, [&](int64_t begin, int64_t end) {
    Scratch<T> sc(Br, Bc, d);
    AlignedBuffer<T> dq_acc(Br * d);
    for (int64_t w = begin; w < end; ++w) {
      const auto [bh, t] = work[w];
      const RowTile& rt = plan.row_tile(bh, t);
      const int64_t kvb = (bh / plan.H) * plan.Hkv + (bh % plan.H) / plan.group();
      std::fill(dq_acc.begin(), dq_acc.end(), T(0));
      for (int64_t j0 = 0; j0 < Tk; j0 += Bc) {
        const int64_t cols = std::min(Bc, Tk - j0);
        const T *qt = nullptr, *dot_ = nullptr;
        if (!tile_grads(sc, bh, rt, j0, cols, qt, dot_)) continue;
        cpu::gemm<T>(false, false, rt.n, d, cols, T(in.scale), sc.ds.data(), Bc, in.k + (kvb * Tk + j0) * d, d, T(1),
                     dq_acc.data(), d);
      }
      for (int64_t a = 0; a < rt.n; ++a) std::copy_n(dq_acc.data() + a * d, d, dq + (bh * Tq + rt.rows[a]) * d);
    }
  });
  const int64_t k_tiles = plan.key_tiles();
  const std::vector<int64_t> key_order = balanced_order(k_tiles);  // early key tiles have the most queries
  at::parallel_for(0, plan.B * plan.Hkv * k_tiles, 1, [&](int64_t begin, int64_t end) {
    Scratch<T> sc(Br, Bc, d);
    for (int64_t w = begin; w < end; ++w) {
      const int64_t kvb = w / k_tiles, j0 = key_order[w % k_tiles] * Bc, cols = std::min(Bc, Tk - j0);
      const int64_t b = kvb / plan.Hkv, g = kvb % plan.Hkv;
      for (int64_t h = g * plan.group(); h < (g + 1) * plan.group(); ++h) {
        const int64_t bh = b * plan.H + h;
        for (int64_t t = 0; t < plan.row_tiles(bh); ++t) {
          const RowTile& rt = plan.row_tile(bh, t);
          const T *qt = nullptr, *dot_ = nullptr;
          if (!tile_grads(sc, bh, rt, j0, cols, qt, dot_)) continue;
          key_grads(sc, kvb, rt, j0, cols, qt, dot_);
        }
      }
    }
  });
}

template void backward_tiles<float>(const Tensors<float>&, const TilePlan&, const float*, const float*, const float*,
                                    float*, float*, float*, float*);
template void backward_tiles<double>(const Tensors<double>&, const TilePlan&, const double*, const double*,
                                     const double*, double*, double*, double*, double*);

}  // namespace attnlab::kernels::detail::ATTNLAB_ISA
