// The CUDA forward of the tiled softmax-family attention (fused_cuda.h; docs/kernels/attention.md,
// "CUDA"): a block per (32 query rows, batch·head), walking key tiles of 32 through shared
// memory. Softmax keeps an online max and sum per row and writes the log-sum-exp; sigmoid
// keeps neither. A key tile whose bounds exclude every visible pair with the block's rows
// (causal, window, documents, key_until) is skipped before K and V are read; rows outside
// active_rows compute nothing. fp32 accumulation, CUDA-core FMAs (no tensor cores yet:
// docs/kernels/attention.md, "CUDA kernel"). Also the spec's host-side checks and device copies (device_spec).
#include <ATen/TensorOperators.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "kernels/attention/cuda/attention_common.cuh"
#include "kernels/attention/fused_cuda.h"
#include "kernels/common/check.h"

namespace attnlab::kernels {
namespace cuda_attention {
namespace {

/// An int64 [T] or [B, T] position tensor on q's device; arange(T) + offset when undefined.
at::Tensor positions(const at::Tensor& t, int64_t B, int64_t T, int64_t offset, const at::TensorOptions& o,
                     const char* name, int64_t& batch_stride) {
  if (!t.defined()) {
    batch_stride = 0;
    return at::arange(T, o) + offset;
  }
  ATTNLAB_CHECK((t.dim() == 1 && t.size(0) == T) || (t.dim() == 2 && t.size(0) == B && t.size(1) == T),
                "attention: ", name, " has shape ", t.sizes(), ", expected [", T, "] or [", B, ", ", T, "]");
  batch_stride = t.dim() == 1 ? 0 : T;
  return t.to(o).contiguous();
}

template <class T, int DPT>
__global__ void __launch_bounds__(kThreads)
    forward_kernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                   const float* __restrict__ bias, Dims n, Mask m, T* __restrict__ out, float* __restrict__ lse) {
  constexpr int D = DPT * kLanes;
  __shared__ KeyTile<D> kt;
  __shared__ RowBlock rb;
  const int lane = threadIdx.x % kLanes, r = threadIdx.x / kLanes;
  const int64_t bh = blockIdx.y, b = bh / n.H, g = (bh % n.H) / n.group();
  const int64_t i = blockIdx.x * static_cast<int64_t>(kRows) + r;
  const bool in_range = i < n.Tq;
  const bool live = in_range && (!m.active || m.active[bh * n.Tq + i]);
  const QueryRow row = in_range ? query_row(m, b, i, n.Tq) : QueryRow{i, 0, 0};
  float qr[DPT], acc[DPT];
  _Pragma("unroll") for (int x = 0; x < DPT; ++x) {
    const int dd = x * kLanes + lane;
    qr[x] = in_range && dd < n.d ? load(q, (bh * n.Tq + i) * n.d + dd) : 0.f;
    acc[x] = 0.f;
  }
  publish_rows(rb, r, row, live);
  float mx = -INFINITY, l = 0.f;
  for (int64_t j0 = 0; j0 < n.Tk; j0 += kTile) {
    if (!load_key_tile(kt, k, v, bias, n, m, b, g, j0, rb.bounds)) continue;
    for (int c = 0; c < kTile; ++c) {
      float s = 0.f;
      _Pragma("unroll") for (int x = 0; x < DPT; ++x) s += qr[x] * kt.kv.a[c][x * kLanes + lane];
      s = row_sum(s);
      if (!live || !kt.ok[c] || !visible(m, n, b, g, row, kt.cols[c])) continue;
      const float z = n.scale * s + kt.bias[c];
      if (z == -INFINITY) continue;  // weight 0 (and exp(−∞ − −∞) would be NaN while mx is −∞)
      float p;
      if (n.sigmoid) {
        p = 1.f / (1.f + expf(-(z + n.sigmoid_bias)));
      } else {
        if (z > mx) {  // a new row maximum: rescale what was summed so far
          const float f = expf(mx - z);
          l *= f;
          _Pragma("unroll") for (int x = 0; x < DPT; ++x) acc[x] *= f;
          mx = z;
        }
        p = expf(z - mx);
        l += p;
      }
      _Pragma("unroll") for (int x = 0; x < DPT; ++x) acc[x] += p * kt.kv.b[c][x * kLanes + lane];
    }
  }
  if (!in_range) return;
  const float inv = n.sigmoid ? 1.f : (l > 0.f ? 1.f / l : 0.f);
  _Pragma("unroll") for (int x = 0; x < DPT; ++x) {
    const int dd = x * kLanes + lane;
    if (dd < n.d) store(out, (bh * n.Tq + i) * n.d + dd, acc[x] * inv);
  }
  if (lane == 0) lse[bh * n.Tq + i] = !n.sigmoid && l > 0.f ? mx + logf(l) : INFINITY;
}

template <class T>
void launch_forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& bias,
                    const DeviceSpec& s, at::Tensor& out, at::Tensor& lse) {
  const Dims& n = s.dims;
  const dim3 grid(static_cast<unsigned>((n.Tq + kRows - 1) / kRows), static_cast<unsigned>(n.B * n.H));
  auto stream = c10::cuda::getCurrentCUDAStream();
  const float* bp = bias.numel() ? bias.const_data_ptr<float>() : nullptr;
  auto go = [&](auto kernel) {
    kernel<<<grid, kThreads, 0, stream>>>(q.const_data_ptr<T>(), k.const_data_ptr<T>(), v.const_data_ptr<T>(), bp,
                                          n, s.mask, out.mutable_data_ptr<T>(), lse.mutable_data_ptr<float>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  };
  if (n.d <= 32) go(forward_kernel<T, 8>);
  else if (n.d <= 64) go(forward_kernel<T, 16>);
  else go(forward_kernel<T, 32>);
}

}  // namespace

DeviceSpec device_spec(const at::Tensor& q, const at::Tensor& k, const at::Tensor& key_bias, const AttentionSpec& s) {
  const int64_t B = q.size(0), H = q.size(1), Tq = q.size(2), d = q.size(3), Hkv = k.size(1), Tk = k.size(2);
  ATTNLAB_CHECK(d <= 128, "fused attention (CUDA): head dim up to 128, got ", d);
  ATTNLAB_CHECK(q.is_contiguous() && k.is_contiguous() && k.scalar_type() == q.scalar_type(),
                "fused attention (CUDA): q and k must be contiguous and of one dtype");
  ATTNLAB_CHECK(B * H <= 65535, "fused attention (CUDA): batch x heads up to 65535, got ", B * H);
  ATTNLAB_CHECK(s.window >= 0 && s.sinks >= 0, "attention: window (", s.window, ") and sinks (", s.sinks,
                ") must be >= 0");
  ATTNLAB_CHECK(key_bias.numel() == 0 || key_bias.scalar_type() == at::kFloat,
                "fused attention (CUDA): key_bias must be float32 here");
  DeviceSpec r;
  const auto longs = q.options().dtype(at::kLong), bools = q.options().dtype(at::kBool);
  r.q_pos = positions(s.q_pos, B, Tq, Tk - Tq, longs, "q_pos", r.mask.q_pos_bs);
  r.k_pos = positions(s.k_pos, B, Tk, 0, longs, "k_pos", r.mask.k_pos_bs);
  r.mask.q_pos = r.q_pos.const_data_ptr<int64_t>(), r.mask.k_pos = r.k_pos.const_data_ptr<int64_t>();
  ATTNLAB_CHECK(s.q_doc.defined() == s.k_doc.defined(), "attention: give both q_doc and k_doc or neither");
  if (s.q_doc.defined()) {
    ATTNLAB_CHECK_SHAPE(s.q_doc, B, Tq);
    ATTNLAB_CHECK_SHAPE(s.k_doc, B, Tk);
    r.q_doc = s.q_doc.to(longs).contiguous(), r.k_doc = s.k_doc.to(longs).contiguous();
    r.mask.q_doc = r.q_doc.const_data_ptr<int64_t>(), r.mask.k_doc = r.k_doc.const_data_ptr<int64_t>();
  }
  r.mask.window = s.window, r.mask.sinks = s.sinks;
  if (s.keep.defined()) {
    ATTNLAB_CHECK(s.keep_block >= 1, "attention: keep_block must be >= 1, got ", s.keep_block);
    const int64_t blocks = (Tk + s.keep_block - 1) / s.keep_block;
    ATTNLAB_CHECK(s.keep.dim() == 4 && s.keep.size(0) == B && s.keep.size(1) == Hkv &&
                      (s.keep.size(2) == 1 || s.keep.size(2) == Tq) && s.keep.size(3) == blocks,
                  "attention: keep has shape ", s.keep.sizes(), ", expected [", B, ", ", Hkv, ", 1 or ", Tq, ", ",
                  blocks, "]");
    r.keep = s.keep.to(bools).contiguous();
    r.mask.keep = r.keep.const_data_ptr<bool>();
    r.mask.keep_rows = s.keep.size(2), r.mask.keep_blocks = blocks, r.mask.keep_block = s.keep_block;
  }
  if (s.key_until.defined()) {
    ATTNLAB_CHECK_SHAPE(s.key_until, B, Hkv, Tk);
    r.until = s.key_until.to(longs).contiguous();
    r.mask.until = r.until.const_data_ptr<int64_t>();
  }
  if (s.active_rows.defined()) {
    ATTNLAB_CHECK_SHAPE(s.active_rows, B, H, Tq);
    r.active = s.active_rows.to(bools).contiguous();
    r.mask.active = r.active.const_data_ptr<bool>();
  }
  r.dims = {B, H, Hkv, Tq, Tk, d, static_cast<float>(s.scale), static_cast<float>(s.sigmoid_bias),
            s.transform == ScoreTransform::sigmoid};
  return r;
}

}  // namespace cuda_attention

AttentionCudaForward attention_cuda_forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                            const at::Tensor& key_bias, const AttentionSpec& spec) {
  using namespace cuda_attention;
  const c10::cuda::CUDAGuard guard(q.device());
  const DeviceSpec s = device_spec(q, k, key_bias, spec);
  ATTNLAB_CHECK(v.is_contiguous() && v.scalar_type() == q.scalar_type() && v.sizes() == k.sizes(),
                "fused attention (CUDA): v must be contiguous, of q's dtype and k's shape");
  at::Tensor out = at::empty_like(q);
  at::Tensor lse = at::empty({s.dims.B, s.dims.H, s.dims.Tq}, q.options().dtype(at::kFloat));
  if (s.dims.B * s.dims.H * s.dims.Tq == 0) return {out, lse};  // d = 0 still runs: lse of the biases
  switch (q.scalar_type()) {
    case at::kFloat: launch_forward<float>(q, k, v, key_bias, s, out, lse); break;
    case at::kBFloat16: launch_forward<at::BFloat16>(q, k, v, key_bias, s, out, lse); break;
    case at::kHalf: launch_forward<at::Half>(q, k, v, key_bias, s, out, lse); break;
    default: ATTNLAB_CHECK(false, "fused attention (CUDA): fp32, bf16 or fp16 inputs, got ", q.scalar_type());
  }
  return {out, lse};
}

}  // namespace attnlab::kernels
