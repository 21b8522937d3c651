// Tiled CPU attention forward (docs/kernels/attention.md, "Tiled CPU kernel"): one work item
// per (batch, head, query tile); key tiles the plan marks skip cost nothing.
#include <ATen/Parallel.h>

#include <vector>

#include "kernels/attention/fused_cpu_tiles.h"

namespace attnlab::kernels::detail::ATTNLAB_ISA {

/// O (rows outside the plan stay as given: zero) and, for softmax, L = m + log ℓ per row (+∞ for
/// a row with no visible key, whose output is 0).
template <class T>
void forward_tiles(const Tensors<T>& in, const TilePlan& plan, T* o, T* lse) {
  const int64_t d = in.d, Br = plan.Br, Bc = plan.Bc;
  const auto& work = plan.work();
  at::parallel_for(0, static_cast<int64_t>(work.size()), 1, [&](int64_t begin, int64_t end) {
    AlignedBuffer<T> qbuf(Br * d), s(Br * Bc), m(Br), l(Br), acc(Br * d);
    AlignedBuffer<Visible> vis(Br * Bc);
    for (int64_t w = begin; w < end; ++w) {
      const auto [bh, t] = work[w];
      const RowTile& rt = plan.row_tile(bh, t);
      const int64_t b = bh / plan.H, g = (bh % plan.H) / plan.group(), kvb = b * plan.Hkv + g, rows = rt.n;
      const T* qt = gather_rows(in.q + bh * plan.Tq * d, rt, d, qbuf.data());
      const T* kb = in.k + kvb * plan.Tk * d;
      const T* vb = in.v + kvb * plan.Tk * d;
      std::fill(m.begin(), m.end(), -std::numeric_limits<T>::infinity());
      std::fill(l.begin(), l.end(), T(0));
      std::fill(acc.begin(), acc.end(), T(0));
      for (int64_t j0 = 0; j0 < plan.Tk; j0 += Bc) {
        const int64_t cols = std::min(Bc, plan.Tk - j0);
        const TileKind kind = plan.classify(b, g, rt, j0, cols);
        if (kind == TileKind::skip) continue;
        if (kind == TileKind::partial && !fill_mask(plan, b, g, rt, j0, cols, vis.data(), Bc)) continue;
        const Visible* mask = kind == TileKind::partial ? vis.data() : nullptr;
        const T* bias = in.key_bias ? in.key_bias + kvb * plan.Tk + j0 : nullptr;
        cpu::gemm<T>(false, true, rows, cols, d, T(1), qt, d, kb + j0 * d, d, T(0), s.data(), Bc);  // Q_I K_Jᵀ
        if (in.sigmoid) {
          weights(in, s.data(), rows, cols, Bc, bias, mask, static_cast<const T*>(nullptr));
        } else {
          for (int64_t a = 0; a < rows; ++a) {  // online softmax over this tile's visible columns
            T* row = s.data() + a * Bc;
            const Visible* v = mask ? mask + a * Bc : nullptr;
            logits(row, cols, in.scale, bias);
            const T tile_max = row_max(row, cols, v);
            if (tile_max == -std::numeric_limits<T>::infinity()) {  // nothing visible in this row yet
              std::fill(row, row + cols, T(0));
              continue;
            }
            const T new_max = std::max(m[a], tile_max);
            const T alpha = std::exp(m[a] - new_max);  // m = −∞ the first time: 0
            const T sum = exp_row(row, cols, new_max, v);
            if (alpha != T(1)) {
              T* acc_a = acc.data() + a * d;
#pragma omp simd
              for (int64_t x = 0; x < d; ++x) acc_a[x] *= alpha;
            }
            l[a] = l[a] * alpha + sum, m[a] = new_max;
          }
        }
        cpu::gemm<T>(false, false, rows, d, cols, T(1), s.data(), Bc, vb + j0 * d, d, T(1), acc.data(), d);  // + P̃ V_J
      }
      for (int64_t a = 0; a < rows; ++a) {
        const int64_t i = rt.rows[a];
        T* oa = o + (bh * plan.Tq + i) * d;
        if (in.sigmoid) {
          std::copy_n(acc.data() + a * d, d, oa);
          continue;
        }
        const bool empty = l[a] == T(0);
        for (int64_t x = 0; x < d; ++x) oa[x] = empty ? T(0) : acc[a * d + x] / l[a];
        lse[bh * plan.Tq + i] = empty ? std::numeric_limits<T>::infinity() : m[a] + std::log(l[a]);
      }
    }
  });
}

template void forward_tiles<float>(const Tensors<float>&, const TilePlan&, float*, float*);
template void forward_tiles<double>(const Tensors<double>&, const TilePlan&, double*, double*);

}  // namespace attnlab::kernels::detail::ATTNLAB_ISA
