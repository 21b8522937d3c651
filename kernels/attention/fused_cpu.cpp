#include "kernels/attention/fused_cpu.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/zeros.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/common/check.h"

namespace attnlab::kernels {
namespace {
constexpr int64_t kTile = 64;  // query rows and key columns per tile

/// Shapes of one call; every tensor is contiguous [B, heads, T, d].
struct Dims {
  int64_t B, H, Hkv, Tq, Tk, d;
  int64_t group() const { return H / Hkv; }
  /// The last key query i may see, + 1 (bottom-right alignment); ≤ 0 means none.
  int64_t key_end(int64_t i) const { return std::min(Tk, i + 1 + Tk - Tq); }
};

template <class T>
T dot(const T* a, const T* b, int64_t n) {
  T s = 0;
  for (int64_t x = 0; x < n; ++x) s += a[x] * b[x];
  return s;
}

/// A row-major [rows, cols] view of raw memory with leading dimension `ld`, for tile GEMMs
/// (at::mm inside at::parallel_for runs on the calling thread).
template <class T>
at::Tensor view(const T* p, int64_t rows, int64_t cols, int64_t ld) {
  return at::from_blob(const_cast<T*>(p), {rows, cols}, {ld, 1}, at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value));
}

/// Masks a score tile (row a may see columns < limit(a)) and returns exp(scale·s − L_a): the
/// attention weights P of the tile, computed from the stored log-sum-exp.
template <class T, class Limit>
void weights_from_lse(T* s, int64_t rows, int64_t cols, int64_t ld, T scale, const T* L, Limit limit) {
  for (int64_t a = 0; a < rows; ++a) {
    const int64_t n = std::clamp<int64_t>(limit(a), 0, cols);
    T* row = s + a * ld;
    for (int64_t c = 0; c < n; ++c) row[c] = std::exp(scale * row[c] - L[a]);
    for (int64_t c = n; c < cols; ++c) row[c] = 0;
  }
}

/// O and L (= m + log ℓ; +∞ for a row with no visible key, whose output is 0).
template <class T>
void forward_kernel(const T* q, const T* k, const T* v, T* o, T* lse, const Dims& D, T scale) {
  const int64_t tiles = (D.Tq + kTile - 1) / kTile;
  at::parallel_for(0, D.B * D.H * tiles, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> s(kTile * kTile), m(kTile), l(kTile), acc(kTile * D.d);
    for (int64_t w = begin; w < end; ++w) {
      const int64_t bh = w / tiles, i0 = (w % tiles) * kTile, rows = std::min(kTile, D.Tq - i0);
      const int64_t b = bh / D.H, h = bh % D.H, g = h / D.group();
      const T* qb = q + (bh * D.Tq + i0) * D.d;
      const T* kb = k + (b * D.Hkv + g) * D.Tk * D.d;
      const T* vb = v + (b * D.Hkv + g) * D.Tk * D.d;
      std::fill(m.begin(), m.end(), -std::numeric_limits<T>::infinity());
      std::fill(l.begin(), l.end(), T(0));
      std::fill(acc.begin(), acc.end(), T(0));
      at::Tensor acc_t = view(acc.data(), rows, D.d, D.d);
      const int64_t keys = std::max<int64_t>(0, D.key_end(i0 + rows - 1));  // causal: stop at the diagonal
      for (int64_t j0 = 0; j0 < keys; j0 += kTile) {
        const int64_t cols = std::min(kTile, keys - j0);
        at::Tensor s_t = view(s.data(), rows, cols, kTile);
        at::mm_out(s_t, view(qb, rows, D.d, D.d), view(kb + j0 * D.d, cols, D.d, D.d).t());  // Q_I K_Jᵀ
        for (int64_t a = 0; a < rows; ++a) {
          const int64_t n = std::clamp<int64_t>(D.key_end(i0 + a) - j0, 0, cols);  // visible columns
          T* row = s.data() + a * kTile;
          T row_max = m[a];
          for (int64_t c = 0; c < n; ++c) row[c] *= scale, row_max = std::max(row_max, row[c]);
          const T alpha = n > 0 ? std::exp(m[a] - row_max) : T(1);  // m = −∞ the first time: 0
          T sum = 0;
          for (int64_t c = 0; c < n; ++c) row[c] = std::exp(row[c] - row_max), sum += row[c];
          for (int64_t c = n; c < cols; ++c) row[c] = 0;
          for (int64_t x = 0; x < D.d; ++x) acc[a * D.d + x] *= alpha;
          if (n > 0) l[a] = l[a] * alpha + sum, m[a] = row_max;
        }
        acc_t.addmm_(s_t, view(vb + j0 * D.d, cols, D.d, D.d));  // + P̃ V_J
      }
      for (int64_t a = 0; a < rows; ++a) {
        T* oa = o + (bh * D.Tq + i0 + a) * D.d;
        const bool empty = l[a] == T(0);
        for (int64_t x = 0; x < D.d; ++x) oa[x] = empty ? T(0) : acc[a * D.d + x] / l[a];
        lse[bh * D.Tq + i0 + a] = empty ? std::numeric_limits<T>::infinity() : m[a] + std::log(l[a]);
      }
    }
  });
}

/// dQ (parallel over query tiles) and dK, dV (parallel over kv heads and key tiles: a key tile
/// sums over the G query heads of its kv head, so nothing is written twice). Every tile pair
/// recomputes S = Q_I K_Jᵀ and dP = dO_I V_Jᵀ by GEMM; P = exp(scale·S − L), dS = P ∘ (dP − D).
template <class T>
void backward_kernel(const T* q, const T* k, const T* v, const T* o, const T* lse, const T* dout, T* dq, T* dk,
                     T* dv, const Dims& D, T scale) {
  std::vector<T> Drow(D.B * D.H * D.Tq);  // rowsum(dO ∘ O)
  at::parallel_for(0, D.B * D.H * D.Tq, 1024, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) Drow[r] = dot(dout + r * D.d, o + r * D.d, D.d);
  });
  // The weights P and score gradients dS of tile (I, J) into p and ds ([rows, kTile]).
  auto tile_grads = [&](int64_t bh, int64_t i0, int64_t rows, int64_t kvb, int64_t j0, int64_t cols, T* p, T* ds) {
    at::Tensor p_t = view(p, rows, cols, kTile), ds_t = view(ds, rows, cols, kTile);
    at::mm_out(p_t, view(q + (bh * D.Tq + i0) * D.d, rows, D.d, D.d), view(k + (kvb * D.Tk + j0) * D.d, cols, D.d, D.d).t());
    weights_from_lse(p, rows, cols, kTile, scale, lse + bh * D.Tq + i0, [&](int64_t a) { return D.key_end(i0 + a) - j0; });
    at::mm_out(ds_t, view(dout + (bh * D.Tq + i0) * D.d, rows, D.d, D.d), view(v + (kvb * D.Tk + j0) * D.d, cols, D.d, D.d).t());
    for (int64_t a = 0; a < rows; ++a)
      for (int64_t c = 0; c < cols; ++c) ds[a * kTile + c] = p[a * kTile + c] * (ds[a * kTile + c] - Drow[bh * D.Tq + i0 + a]);
  };
  const int64_t q_tiles = (D.Tq + kTile - 1) / kTile, k_tiles = (D.Tk + kTile - 1) / kTile;
  at::parallel_for(0, D.B * D.H * q_tiles, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> p(kTile * kTile), ds(kTile * kTile);
    for (int64_t w = begin; w < end; ++w) {
      const int64_t bh = w / q_tiles, i0 = (w % q_tiles) * kTile, rows = std::min(kTile, D.Tq - i0);
      const int64_t kvb = (bh / D.H) * D.Hkv + (bh % D.H) / D.group();
      at::Tensor dq_t = view(dq + (bh * D.Tq + i0) * D.d, rows, D.d, D.d);
      const int64_t keys = std::max<int64_t>(0, D.key_end(i0 + rows - 1));
      for (int64_t j0 = 0; j0 < keys; j0 += kTile) {
        const int64_t cols = std::min(kTile, keys - j0);
        tile_grads(bh, i0, rows, kvb, j0, cols, p.data(), ds.data());
        dq_t.addmm_(view(ds.data(), rows, cols, kTile), view(k + (kvb * D.Tk + j0) * D.d, cols, D.d, D.d), 1, scale);
      }
    }
  });
  at::parallel_for(0, D.B * D.Hkv * k_tiles, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> p(kTile * kTile), ds(kTile * kTile);
    for (int64_t w = begin; w < end; ++w) {
      const int64_t kvb = w / k_tiles, j0 = (w % k_tiles) * kTile, cols = std::min(kTile, D.Tk - j0);
      const int64_t b = kvb / D.Hkv, g = kvb % D.Hkv;
      at::Tensor dk_t = view(dk + (kvb * D.Tk + j0) * D.d, cols, D.d, D.d);
      at::Tensor dv_t = view(dv + (kvb * D.Tk + j0) * D.d, cols, D.d, D.d);
      const int64_t first_query = std::max<int64_t>(0, j0 - (D.Tk - D.Tq));  // causal: earlier rows see none
      for (int64_t h = g * D.group(); h < (g + 1) * D.group(); ++h) {
        const int64_t bh = b * D.H + h;
        for (int64_t i0 = first_query / kTile * kTile; i0 < D.Tq; i0 += kTile) {
          const int64_t rows = std::min(kTile, D.Tq - i0);
          tile_grads(bh, i0, rows, kvb, j0, cols, p.data(), ds.data());
          dv_t.addmm_(view(p.data(), rows, cols, kTile).t(), view(dout + (bh * D.Tq + i0) * D.d, rows, D.d, D.d));
          dk_t.addmm_(view(ds.data(), rows, cols, kTile).t(), view(q + (bh * D.Tq + i0) * D.d, rows, D.d, D.d), 1,
                      scale);
        }
      }
    }
  });
}

Dims dims_of(const at::Tensor& q, const at::Tensor& k) {
  return {q.size(0), q.size(1), k.size(1), q.size(2), k.size(2), q.size(3)};
}

at::ScalarType compute_dtype(const at::Tensor& q) { return q.scalar_type() == at::kDouble ? at::kDouble : at::kFloat; }

class FusedAttention : public torch::autograd::Function<FusedAttention> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& q_in, const at::Tensor& k_in,
                            const at::Tensor& v_in, double scale) {
    const auto dt = compute_dtype(q_in);
    at::Tensor q = q_in.to(dt).contiguous(), k = k_in.to(dt).contiguous(), v = v_in.to(dt).contiguous();
    const Dims D = dims_of(q, k);
    at::Tensor o = at::empty_like(q), lse = at::empty({D.B, D.H, D.Tq}, q.options());
    AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "causal_attention_fused", [&] {
      forward_kernel<scalar_t>(q.const_data_ptr<scalar_t>(), k.const_data_ptr<scalar_t>(), v.const_data_ptr<scalar_t>(),
                               o.mutable_data_ptr<scalar_t>(), lse.mutable_data_ptr<scalar_t>(), D,
                               static_cast<scalar_t>(scale));
    });
    ctx->save_for_backward({q, k, v, o, lse});
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["dtype"] = static_cast<int64_t>(q_in.scalar_type());
    return o.to(q_in.scalar_type());
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto s = ctx->get_saved_variables();
    const at::Tensor &q = s[0], &k = s[1], &v = s[2], &o = s[3], &lse = s[4];
    const double scale = ctx->saved_data["scale"].toDouble();
    const auto in_dtype = static_cast<at::ScalarType>(ctx->saved_data["dtype"].toInt());
    at::Tensor dout = grads[0].to(q.scalar_type()).contiguous();
    at::Tensor dq = at::zeros_like(q), dk = at::zeros_like(k), dv = at::zeros_like(v);
    const Dims D = dims_of(q, k);
    AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "causal_attention_fused_backward", [&] {
      backward_kernel<scalar_t>(q.const_data_ptr<scalar_t>(), k.const_data_ptr<scalar_t>(), v.const_data_ptr<scalar_t>(),
                                o.const_data_ptr<scalar_t>(), lse.const_data_ptr<scalar_t>(),
                                dout.const_data_ptr<scalar_t>(), dq.mutable_data_ptr<scalar_t>(),
                                dk.mutable_data_ptr<scalar_t>(), dv.mutable_data_ptr<scalar_t>(), D,
                                static_cast<scalar_t>(scale));
    });
    return {dq.to(in_dtype), dk.to(in_dtype), dv.to(in_dtype), at::Tensor()};
  }
};

}  // namespace

at::Tensor causal_attention_fused(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale) {
  ATTNLAB_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, "fused attention: q, k, v must be 4-D, got ",
                q.sizes(), k.sizes(), v.sizes());
  ATTNLAB_CHECK(!q.is_cuda(), "fused attention: the tiled kernel runs on CPU only (CUDA: kernel auto uses SDPA)");
  const int64_t B = q.size(0), H = q.size(1), d = q.size(3), Hkv = k.size(1), Tk = k.size(2);
  ATTNLAB_CHECK_SHAPE(k, B, Hkv, Tk, d);
  ATTNLAB_CHECK_SHAPE(v, B, Hkv, Tk, d);
  ATTNLAB_CHECK(Hkv > 0 && H % Hkv == 0, "fused attention: query heads ", H, " not a multiple of kv heads ", Hkv);
  return FusedAttention::apply(q, k, v, scale);
}

}  // namespace attnlab::kernels
