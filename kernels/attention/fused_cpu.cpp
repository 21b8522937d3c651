#include "kernels/attention/fused_cpu.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
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
      const int64_t keys = std::max<int64_t>(0, D.key_end(i0 + rows - 1));  // causal: stop at the diagonal
      for (int64_t j0 = 0; j0 < keys; j0 += kTile) {
        const int64_t cols = std::min(kTile, keys - j0);
        for (int64_t a = 0; a < rows; ++a) {
          const int64_t limit = D.key_end(i0 + a) - j0;  // columns < limit are visible
          if (limit <= 0) continue;
          const int64_t n = std::min(cols, limit);
          T row_max = m[a];
          for (int64_t c = 0; c < n; ++c) {
            s[a * kTile + c] = scale * dot(qb + a * D.d, kb + (j0 + c) * D.d, D.d);
            row_max = std::max(row_max, s[a * kTile + c]);
          }
          const T alpha = std::exp(m[a] - row_max);  // m = −∞ the first time: alpha = 0
          T* acc_a = acc.data() + a * D.d;
          for (int64_t x = 0; x < D.d; ++x) acc_a[x] *= alpha;
          T sum = 0;
          for (int64_t c = 0; c < n; ++c) {
            const T p = std::exp(s[a * kTile + c] - row_max);
            sum += p;
            const T* vj = vb + (j0 + c) * D.d;
            for (int64_t x = 0; x < D.d; ++x) acc_a[x] += p * vj[x];
          }
          l[a] = l[a] * alpha + sum, m[a] = row_max;
        }
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
/// sums over the G query heads of its kv head, so nothing is written twice).
template <class T>
void backward_kernel(const T* q, const T* k, const T* v, const T* o, const T* lse, const T* dout, T* dq, T* dk,
                     T* dv, const Dims& D, T scale) {
  std::vector<T> Drow(D.B * D.H * D.Tq);  // rowsum(dO ∘ O)
  at::parallel_for(0, D.B * D.H * D.Tq, 1024, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) Drow[r] = dot(dout + r * D.d, o + r * D.d, D.d);
  });
  // P_ij and dS_ij = P_ij (dO_i · v_j − D_i) for query row r = (bh, i) and key j of kv row kvb.
  auto p_and_ds = [&](int64_t bh, int64_t i, int64_t kvb, int64_t j, T& p, T& ds) {
    const T* qi = q + (bh * D.Tq + i) * D.d;
    p = std::exp(scale * dot(qi, k + (kvb * D.Tk + j) * D.d, D.d) - lse[bh * D.Tq + i]);
    ds = p * (dot(dout + (bh * D.Tq + i) * D.d, v + (kvb * D.Tk + j) * D.d, D.d) - Drow[bh * D.Tq + i]);
  };
  const int64_t q_tiles = (D.Tq + kTile - 1) / kTile, k_tiles = (D.Tk + kTile - 1) / kTile;
  at::parallel_for(0, D.B * D.H * q_tiles, 1, [&](int64_t begin, int64_t end) {
    for (int64_t w = begin; w < end; ++w) {
      const int64_t bh = w / q_tiles, i0 = (w % q_tiles) * kTile, rows = std::min(kTile, D.Tq - i0);
      const int64_t kvb = (bh / D.H) * D.Hkv + (bh % D.H) / D.group();
      for (int64_t i = i0; i < i0 + rows; ++i) {
        T* dqi = dq + (bh * D.Tq + i) * D.d;
        for (int64_t j = 0; j < D.key_end(i); ++j) {
          T p, ds;
          p_and_ds(bh, i, kvb, j, p, ds);
          const T* kj = k + (kvb * D.Tk + j) * D.d;
          for (int64_t x = 0; x < D.d; ++x) dqi[x] += scale * ds * kj[x];
        }
      }
    }
  });
  at::parallel_for(0, D.B * D.Hkv * k_tiles, 1, [&](int64_t begin, int64_t end) {
    for (int64_t w = begin; w < end; ++w) {
      const int64_t kvb = w / k_tiles, j0 = (w % k_tiles) * kTile, cols = std::min(kTile, D.Tk - j0);
      const int64_t b = kvb / D.Hkv, g = kvb % D.Hkv;
      const int64_t first_query = std::max<int64_t>(0, j0 - (D.Tk - D.Tq));  // causal: earlier rows see none
      for (int64_t h = g * D.group(); h < (g + 1) * D.group(); ++h) {
        const int64_t bh = b * D.H + h;
        for (int64_t i = first_query; i < D.Tq; ++i) {
          const int64_t n = std::min(cols, D.key_end(i) - j0);
          const T* qi = q + (bh * D.Tq + i) * D.d;
          const T* doi = dout + (bh * D.Tq + i) * D.d;
          for (int64_t c = 0; c < n; ++c) {
            T p, ds;
            p_and_ds(bh, i, kvb, j0 + c, p, ds);
            T* dkj = dk + (kvb * D.Tk + j0 + c) * D.d;
            T* dvj = dv + (kvb * D.Tk + j0 + c) * D.d;
            for (int64_t x = 0; x < D.d; ++x) dkj[x] += scale * ds * qi[x], dvj[x] += p * doi[x];
          }
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
