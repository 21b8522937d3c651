// The CUDA backward of the tiled softmax-family attention (fused_cuda.h; docs/kernels/attention.md,
// "CUDA"). Two kernels, so that no gradient needs atomics:
//   dq_kernel  : a block per (32 query rows, batch·head), walking key tiles: dq = scale·Σ_j ds_ij k_j
//   dkv_kernel : a block per (32 keys, batch·kv head), walking every query tile of every head of
//                its group: dv_j = Σ_i p_ij dO_i, dk_j = scale·Σ_i ds_ij q_i, dbias_j = Σ_i ds_ij
// Both recompute the weights: softmax p = exp(z − L) from the stored log-sum-exp, with
// ds = p (dO·v − D) and D = rowsum(dO ∘ O); sigmoid p = σ(z + b), ds = (dO·v) p (1 − p), and no D.
#include <ATen/TensorOperators.h>
#include <ATen/ops/sum.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "kernels/attention/cuda/attention_common.cuh"
#include "kernels/attention/fused_cuda.h"
#include "kernels/common/check.h"

namespace attnlab::kernels {
namespace cuda_attention {
namespace {

/// ds = ∂loss/∂z for one visible pair, and the weight p it came from.
__device__ __forceinline__ float2 weight_and_grad(const Dims& n, float z, float dp, float row_lse, float row_d) {
  if (n.sigmoid) {
    const float p = 1.f / (1.f + expf(-(z + n.sigmoid_bias)));
    return {p, dp * p * (1.f - p)};
  }
  const float p = expf(z - row_lse);
  return {p, p * (dp - row_d)};
}

template <class T, int DPT>
__global__ void __launch_bounds__(kThreads)
    dq_kernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v, const float* __restrict__ bias,
              const T* __restrict__ dout, const float* __restrict__ lse, const float* __restrict__ dsum, Dims n, Mask m,
              float* __restrict__ dq) {
  constexpr int D = DPT * kLanes;
  __shared__ KeyTile<D> kt;
  __shared__ RowBlock rb;
  const int lane = threadIdx.x % kLanes, r = threadIdx.x / kLanes;
  const int64_t bh = blockIdx.y, b = bh / n.H, g = (bh % n.H) / n.group();
  const int64_t i = blockIdx.x * static_cast<int64_t>(kRows) + r;
  const bool in_range = i < n.Tq;
  const bool live = in_range && (!m.active || m.active[bh * n.Tq + i]);
  const QueryRow row = in_range ? query_row(m, b, i, n.Tq) : QueryRow{i, 0, 0};
  const float row_lse = in_range ? lse[bh * n.Tq + i] : 0.f, row_d = in_range ? dsum[bh * n.Tq + i] : 0.f;
  float qr[DPT], dor[DPT], acc[DPT];
  _Pragma("unroll") for (int x = 0; x < DPT; ++x) {
    const int dd = x * kLanes + lane;
    const bool in = in_range && dd < n.d;
    qr[x] = in ? load(q, (bh * n.Tq + i) * n.d + dd) : 0.f;
    dor[x] = in ? load(dout, (bh * n.Tq + i) * n.d + dd) : 0.f;
    acc[x] = 0.f;
  }
  publish_rows(rb, r, row, live);
  for (int64_t j0 = 0; j0 < n.Tk; j0 += kTile) {
    if (!load_key_tile(kt, k, v, bias, n, m, b, g, j0, rb.bounds)) continue;
    for (int c = 0; c < kTile; ++c) {
      float s = 0.f, dp = 0.f;
      _Pragma("unroll") for (int x = 0; x < DPT; ++x) {
        s += qr[x] * kt.kv.a[c][x * kLanes + lane];
        dp += dor[x] * kt.kv.b[c][x * kLanes + lane];
      }
      s = row_sum(s), dp = row_sum(dp);
      if (!live || !kt.ok[c] || !visible(m, n, b, g, row, kt.cols[c])) continue;
      const float ds = weight_and_grad(n, n.scale * s + kt.bias[c], dp, row_lse, row_d).y;
      _Pragma("unroll") for (int x = 0; x < DPT; ++x) acc[x] += ds * kt.kv.a[c][x * kLanes + lane];
    }
  }
  if (!in_range) return;
  _Pragma("unroll") for (int x = 0; x < DPT; ++x) {
    const int dd = x * kLanes + lane;
    if (dd < n.d) dq[(bh * n.Tq + i) * n.d + dd] = n.scale * acc[x];
  }
}

template <class T, int DPT>
__global__ void __launch_bounds__(kThreads)
    dkv_kernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v, const float* __restrict__ bias,
               const T* __restrict__ dout, const float* __restrict__ lse, const float* __restrict__ dsum, Dims n,
               Mask m, float* __restrict__ dk, float* __restrict__ dv, float* __restrict__ dbias) {
  constexpr int D = DPT * kLanes;
  __shared__ PairTile<D> qd;  // Q and dO of one query tile
  __shared__ QueryRow rows[kTile];
  __shared__ float row_lse[kTile], row_d[kTile];
  __shared__ bool row_live[kTile], col_ok[kRows];
  __shared__ KeyCol cols[kRows];
  __shared__ Bounds row_bounds, col_bounds;
  const int lane = threadIdx.x % kLanes, c = threadIdx.x / kLanes;
  const int64_t bg = blockIdx.y, b = bg / n.Hkv, g = bg % n.Hkv;
  const int64_t j = blockIdx.x * static_cast<int64_t>(kRows) + c;
  const bool in_range = j < n.Tk;
  const KeyCol col = in_range ? key_col(m, n, b, g, j) : KeyCol{j, 0, 0, kNoBound};
  if (lane == 0) cols[c] = col, col_ok[c] = in_range;
  const float key_bias = in_range && bias ? bias[bg * n.Tk + j] : 0.f;
  float kr[DPT], vr[DPT], dka[DPT], dva[DPT], db = 0.f;
  _Pragma("unroll") for (int x = 0; x < DPT; ++x) {
    const int dd = x * kLanes + lane;
    const bool in = in_range && dd < n.d;
    kr[x] = in ? load(k, (bg * n.Tk + j) * n.d + dd) : 0.f;
    vr[x] = in ? load(v, (bg * n.Tk + j) * n.d + dd) : 0.f;
    dka[x] = dva[x] = 0.f;
  }
  __syncthreads();
  if (threadIdx.x == 0) reduce_bounds(cols, col_ok, kRows, &col_bounds);
  for (int64_t hh = 0; hh < n.group(); ++hh) {
    const int64_t bh = b * n.H + g * n.group() + hh;
    for (int64_t i0 = 0; i0 < n.Tq; i0 += kTile) {
      __syncthreads();  // the previous tile is consumed and col_bounds is written
      if (threadIdx.x < kTile) {
        const int64_t i = i0 + threadIdx.x;
        const bool live = i < n.Tq && (!m.active || m.active[bh * n.Tq + i]);
        row_live[threadIdx.x] = live;
        if (i < n.Tq) {
          rows[threadIdx.x] = query_row(m, b, i, n.Tq);
          row_lse[threadIdx.x] = lse[bh * n.Tq + i], row_d[threadIdx.x] = dsum[bh * n.Tq + i];
        }
      }
      __syncthreads();
      if (threadIdx.x == 0) reduce_bounds(rows, row_live, kTile, &row_bounds);
      __syncthreads();
      if (disjoint(m, row_bounds, col_bounds)) continue;
      load_pair(qd, q, dout, bh * n.Tq, i0, n.Tq, n.d);
      __syncthreads();
      for (int rr = 0; rr < kTile; ++rr) {
        float s = 0.f, dp = 0.f;
        _Pragma("unroll") for (int x = 0; x < DPT; ++x) {
          s += qd.a[rr][x * kLanes + lane] * kr[x];
          dp += qd.b[rr][x * kLanes + lane] * vr[x];
        }
        s = row_sum(s), dp = row_sum(dp);
        if (!in_range || !row_live[rr] || !visible(m, n, b, g, rows[rr], col)) continue;
        const float2 w = weight_and_grad(n, n.scale * s + key_bias, dp, row_lse[rr], row_d[rr]);
        _Pragma("unroll") for (int x = 0; x < DPT; ++x) {
          dva[x] += w.x * qd.b[rr][x * kLanes + lane];
          dka[x] += w.y * qd.a[rr][x * kLanes + lane];
        }
        db += w.y;
      }
    }
  }
  if (!in_range) return;
  _Pragma("unroll") for (int x = 0; x < DPT; ++x) {
    const int dd = x * kLanes + lane;
    if (dd < n.d) dk[(bg * n.Tk + j) * n.d + dd] = n.scale * dka[x], dv[(bg * n.Tk + j) * n.d + dd] = dva[x];
  }
  if (lane == 0 && dbias) dbias[bg * n.Tk + j] = db;
}

template <class T>
void launch_backward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& bias,
                     const at::Tensor& dout, const at::Tensor& lse, const at::Tensor& dsum, const DeviceSpec& s,
                     AttentionCudaGrads& g) {
  const Dims& n = s.dims;
  auto stream = c10::cuda::getCurrentCUDAStream();
  const float* bp = bias.numel() ? bias.const_data_ptr<float>() : nullptr;
  const dim3 q_grid(static_cast<unsigned>((n.Tq + kRows - 1) / kRows), static_cast<unsigned>(n.B * n.H));
  const dim3 k_grid(static_cast<unsigned>((n.Tk + kRows - 1) / kRows), static_cast<unsigned>(n.B * n.Hkv));
  auto go = [&](auto dq_k, auto dkv_k) {
    const T *qp = q.const_data_ptr<T>(), *kp = k.const_data_ptr<T>(), *vp = v.const_data_ptr<T>();
    const T* dop = dout.const_data_ptr<T>();
    const float *lp = lse.const_data_ptr<float>(), *dp = dsum.const_data_ptr<float>();
    if (n.Tq > 0) {
      dq_k<<<q_grid, kThreads, 0, stream>>>(qp, kp, vp, bp, dop, lp, dp, n, s.mask, g.dq.mutable_data_ptr<float>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    if (n.Tk > 0) {
      dkv_k<<<k_grid, kThreads, 0, stream>>>(qp, kp, vp, bp, dop, lp, dp, n, s.mask, g.dk.mutable_data_ptr<float>(),
                                             g.dv.mutable_data_ptr<float>(),
                                             g.dbias.defined() ? g.dbias.mutable_data_ptr<float>() : nullptr);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  };
  if (n.d <= 32) go(dq_kernel<T, 8>, dkv_kernel<T, 8>);
  else if (n.d <= 64) go(dq_kernel<T, 16>, dkv_kernel<T, 16>);
  else go(dq_kernel<T, 32>, dkv_kernel<T, 32>);
}

}  // namespace
}  // namespace cuda_attention

AttentionCudaGrads attention_cuda_backward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                           const at::Tensor& key_bias, const at::Tensor& out, const at::Tensor& lse,
                                           const at::Tensor& dout, const AttentionSpec& spec) {
  using namespace cuda_attention;
  const c10::cuda::CUDAGuard guard(q.device());
  const DeviceSpec s = device_spec(q, k, key_bias, spec);
  const auto f32 = q.options().dtype(at::kFloat);
  AttentionCudaGrads g{at::zeros(q.sizes(), f32), at::zeros(k.sizes(), f32), at::zeros(v.sizes(), f32),
                       key_bias.numel() ? at::zeros(key_bias.sizes(), f32) : at::Tensor()};
  // D = rowsum(dO ∘ O), the softmax backward's row term; sigmoid has none.
  const at::Tensor dsum = s.dims.sigmoid ? at::zeros(lse.sizes(), f32)
                                         : (dout.to(at::kFloat) * out.to(at::kFloat)).sum(-1).contiguous();
  if (s.dims.B * s.dims.H == 0) return g;
  ATTNLAB_CHECK(v.is_contiguous() && v.scalar_type() == q.scalar_type() && v.sizes() == k.sizes(),
                "fused attention (CUDA): v must be contiguous, of q's dtype and k's shape");
  const at::Tensor dout_c = dout.to(q.scalar_type()).contiguous();
  switch (q.scalar_type()) {
    case at::kFloat: launch_backward<float>(q, k, v, key_bias, dout_c, lse, dsum, s, g); break;
    case at::kBFloat16: launch_backward<at::BFloat16>(q, k, v, key_bias, dout_c, lse, dsum, s, g); break;
    case at::kHalf: launch_backward<at::Half>(q, k, v, key_bias, dout_c, lse, dsum, s, g); break;
    default: ATTNLAB_CHECK(false, "fused attention (CUDA): fp32, bf16 or fp16 inputs, got ", q.scalar_type());
  }
  return g;
}

}  // namespace attnlab::kernels
