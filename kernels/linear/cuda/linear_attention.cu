// Fused CUDA gated linear attention (api.h), materialising chunk variant (docs/kernels/linear.md):
//   chunk_states   : per (b, h, value tile), walk chunks left to right, write S_{n-1} [N, dk, dv]
//   chunk_output   : per (b, h, chunk), O = scale·(q ⊙ e^{ell}) S_{n-1} + A V
//   state_grads    : per (b, h, value tile), walk right to left, write dS_n, return dS_0
//   chunk_grads    : per (b, h, chunk), dq, dk, dv from A, dA = dO Vᵀ, S_{n-1}, dS_n
// The backward recomputes the states instead of keeping them from the forward. Inputs fp32,
// bf16 or fp16; every accumulation and every state in fp32; every exp argument is a
// later-minus-earlier cumulative log-gate (≤ 0). Intra-chunk scores use exact elementwise
// exps (no tensor cores yet: a known performance gap, see docs/benchmarks.md).
#include <ATen/core/Tensor.h>
#include <ATen/ops/cumsum.h>
#include <ATen/TensorOperators.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/flip.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "kernels/linear/fused.h"

namespace attnlab::kernels {
namespace {

constexpr int kThreads = 256;
constexpr int kValueTile = 32;

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

struct Dims {
  int64_t T, dk, dv, C, N;
};

/// Rows of the chunk starting at t0 (the last chunk may be partial).
__device__ __forceinline__ int chunk_len(const Dims& n, int64_t t0) {
  return static_cast<int>(n.T - t0 < n.C ? n.T - t0 : n.C);
}
/// Columns of the value tile starting at e0.
__device__ __forceinline__ int tile_width(const Dims& n, int e0) {
  return static_cast<int>(n.dv - e0 < kValueTile ? n.dv - e0 : kValueTile);
}

/// ell[j, d] = Σ_{i ≤ j} g[t0 + i, d] for the chunk's L rows (one thread per channel).
__device__ void chunk_cumsum(const float* g, int64_t t0, int L, int dk, float* ell) {
  for (int d = threadIdx.x; d < dk; d += blockDim.x) {
    float run = 0.f;
    for (int j = 0; j < L; ++j) ell[j * dk + d] = (run += g[(t0 + j) * dk + d]);
  }
}

/// A[j, m] = scale·Σ_d q_jd k_md e^{ell_jd − ell_md} for m ≤ j, 0 above (q, k, ell in smem).
__device__ void intra_scores(const float* q, const float* k, const float* ell, int L, int C, int dk,
                             float scale, float* A) {
  for (int idx = threadIdx.x; idx < L * L; idx += blockDim.x) {
    const int j = idx / L, m = idx % L;
    float acc = 0.f;
    if (m <= j)
      for (int d = 0; d < dk; ++d) acc += q[j * dk + d] * k[m * dk + d] * expf(ell[j * dk + d] - ell[m * dk + d]);
    A[j * C + m] = scale * acc;
  }
}

template <class T>
__device__ void load_rows(const T* src, int64_t t0, int L, int width, float* dst) {
  for (int i = threadIdx.x; i < L * width; i += blockDim.x) dst[i] = load(src, t0 * width + i);
}

/// Columns e0..e0+ew of `rows` rows (row stride dv) starting at row t0, into dst [rows, ew].
template <class T>
__device__ void load_column_tile(const T* src, int64_t t0, int rows, int64_t dv, int e0, int ew, float* dst) {
  for (int i = threadIdx.x; i < rows * ew; i += blockDim.x) dst[i] = load(src, (t0 + i / ew) * dv + e0 + i % ew);
}

/// The inverse for a [dk, dv] state: src [dk, ew] into columns e0..e0+ew of dst.
__device__ void store_column_tile(const float* src, int dk, int64_t dv, int e0, int ew, float* dst) {
  for (int i = threadIdx.x; i < dk * ew; i += blockDim.x) dst[(i / ew) * dv + e0 + i % ew] = src[i];
}

/// Grid (B·H, ceil(dv / kValueTile)). states [B, H, N, dk, dv] receives S before each chunk.
template <class T>
__global__ void chunk_states_kernel(const T* k, const T* v, const float* g, const float* s0,
                                    float* states, float* final_state, Dims n) {
  extern __shared__ float smem[];
  const int dk = static_cast<int>(n.dk), C = static_cast<int>(n.C), e0 = blockIdx.y * kValueTile;
  const int ew = tile_width(n, e0);
  float *S = smem, *kk = S + dk * kValueTile, *ell = kk + C * dk, *vv = ell + C * dk;
  const int64_t bh = blockIdx.x;
  k += bh * n.T * dk, v += bh * n.T * n.dv, g += bh * n.T * dk;
  load_column_tile(s0 + bh * dk * n.dv, 0, dk, n.dv, e0, ew, S);
  for (int64_t c = 0; c < n.N; ++c) {
    const int64_t t0 = c * C;
    const int L = chunk_len(n, t0);
    __syncthreads();
    store_column_tile(S, dk, n.dv, e0, ew, states + (bh * n.N + c) * dk * n.dv);
    load_rows(k, t0, L, dk, kk);
    load_column_tile(v, t0, L, n.dv, e0, ew, vv);
    chunk_cumsum(g, t0, L, dk, ell);
    __syncthreads();
    const float* last = ell + (L - 1) * dk;
    for (int i = threadIdx.x; i < L * dk; i += blockDim.x) kk[i] *= expf(last[i % dk] - ell[i]);  // k ⊙ e^{ell_L − ell}
    __syncthreads();
    for (int i = threadIdx.x; i < dk * ew; i += blockDim.x) {
      const int d = i / ew, e = i % ew;
      float acc = expf(last[d]) * S[i];
      for (int m = 0; m < L; ++m) acc += kk[m * dk + d] * vv[m * ew + e];
      S[i] = acc;
    }
  }
  __syncthreads();
  store_column_tile(S, dk, n.dv, e0, ew, final_state + bh * dk * n.dv);
}

/// Grid (B·H·N). O = scale·(q ⊙ e^{ell}) S_{n-1} + A V.
template <class T>
__global__ void chunk_output_kernel(const T* q, const T* k, const T* v, const float* g,
                                    const float* states, T* out, Dims n, float scale) {
  extern __shared__ float smem[];
  const int dk = static_cast<int>(n.dk), C = static_cast<int>(n.C);
  const int64_t bh = blockIdx.x / n.N, c = blockIdx.x % n.N, t0 = c * C;
  const int L = chunk_len(n, t0);
  float *qq = smem, *kk = qq + C * dk, *ell = kk + C * dk, *A = ell + C * dk, *qg = A + C * C;
  q += bh * n.T * dk, k += bh * n.T * dk, v += bh * n.T * n.dv, g += bh * n.T * dk, out += bh * n.T * n.dv;
  const float* S = states + (bh * n.N + c) * dk * n.dv;
  load_rows(q, t0, L, dk, qq);
  load_rows(k, t0, L, dk, kk);
  chunk_cumsum(g, t0, L, dk, ell);
  __syncthreads();
  intra_scores(qq, kk, ell, L, C, dk, scale, A);
  for (int i = threadIdx.x; i < L * dk; i += blockDim.x) qg[i] = qq[i] * expf(ell[i]);  // q ⊙ e^{ell}
  __syncthreads();
  for (int i = threadIdx.x; i < L * n.dv; i += blockDim.x) {
    const int j = i / n.dv, e = i % n.dv;
    float acc = 0.f;
    for (int d = 0; d < dk; ++d) acc += qg[j * dk + d] * S[d * n.dv + e];
    acc *= scale;
    for (int m = 0; m <= j; ++m) acc += A[j * C + m] * load(v, (t0 + m) * n.dv + e);
    store(out, (t0 + j) * n.dv + e, acc);
  }
}

/// Grid (B·H, ceil(dv / kValueTile)). dstates[n] = gradient of the state at the END of chunk n;
/// dS ← Diag(e^{ell_L}) dS + scale·(q ⊙ e^{ell})ᵀ dO walking right to left; ds0 = the last dS.
template <class T>
__global__ void state_grads_kernel(const T* q, const float* g, const T* dout, const float* dstate,
                                   float* dstates, float* ds0, Dims n, float scale) {
  extern __shared__ float smem[];
  const int dk = static_cast<int>(n.dk), C = static_cast<int>(n.C), e0 = blockIdx.y * kValueTile;
  const int ew = tile_width(n, e0);
  float *dS = smem, *qq = dS + dk * kValueTile, *ell = qq + C * dk, *dd = ell + C * dk;
  const int64_t bh = blockIdx.x;
  q += bh * n.T * dk, g += bh * n.T * dk, dout += bh * n.T * n.dv;
  load_column_tile(dstate + bh * dk * n.dv, 0, dk, n.dv, e0, ew, dS);
  for (int64_t c = n.N - 1; c >= 0; --c) {
    const int64_t t0 = c * C;
    const int L = chunk_len(n, t0);
    __syncthreads();
    store_column_tile(dS, dk, n.dv, e0, ew, dstates + (bh * n.N + c) * dk * n.dv);
    load_rows(q, t0, L, dk, qq);
    load_column_tile(dout, t0, L, n.dv, e0, ew, dd);
    chunk_cumsum(g, t0, L, dk, ell);
    __syncthreads();
    const float* last = ell + (L - 1) * dk;
    for (int i = threadIdx.x; i < L * dk; i += blockDim.x) qq[i] *= expf(ell[i]);  // q ⊙ e^{ell}
    __syncthreads();
    for (int i = threadIdx.x; i < dk * ew; i += blockDim.x) {
      const int d = i / ew, e = i % ew;
      float acc = 0.f;
      for (int j = 0; j < L; ++j) acc += qq[j * dk + d] * dd[j * ew + e];
      dS[i] = expf(last[d]) * dS[i] + scale * acc;
    }
  }
  __syncthreads();
  store_column_tile(dS, dk, n.dv, e0, ew, ds0 + bh * dk * n.dv);
}

/// Grid (B·H·N). dq, dk, dv of one chunk (fp32 outputs) from S_{n-1} and dS_n.
template <class T>
__global__ void chunk_grads_kernel(const T* q, const T* k, const T* v, const float* g, const T* dout,
                                   const float* states, const float* dstates, float* dq, float* dk_out,
                                   float* dv_out, Dims n, float scale) {
  extern __shared__ float smem[];
  const int dk = static_cast<int>(n.dk), C = static_cast<int>(n.C);
  const int64_t bh = blockIdx.x / n.N, c = blockIdx.x % n.N, t0 = c * C;
  const int L = chunk_len(n, t0);
  float *qq = smem, *kk = qq + C * dk, *ell = kk + C * dk, *A = ell + C * dk, *dA = A + C * C;
  const int64_t xk = bh * n.T * dk, xv = bh * n.T * n.dv;
  q += xk, k += xk, g += xk, v += xv, dout += xv, dq += xk, dk_out += xk, dv_out += xv;
  const float* S = states + (bh * n.N + c) * dk * n.dv;
  const float* dS = dstates + (bh * n.N + c) * dk * n.dv;
  load_rows(q, t0, L, dk, qq);
  load_rows(k, t0, L, dk, kk);
  chunk_cumsum(g, t0, L, dk, ell);
  __syncthreads();
  intra_scores(qq, kk, ell, L, C, dk, scale, A);
  for (int idx = threadIdx.x; idx < L * L; idx += blockDim.x) {  // dA = dO Vᵀ, m ≤ j
    const int j = idx / L, m = idx % L;
    float acc = 0.f;
    if (m <= j)
      for (int e = 0; e < n.dv; ++e) acc += load(dout, (t0 + j) * n.dv + e) * load(v, (t0 + m) * n.dv + e);
    dA[j * C + m] = acc;
  }
  __syncthreads();
  const float* last = ell + (L - 1) * dk;
  for (int i = threadIdx.x; i < L * dk; i += blockDim.x) {
    const int j = i / dk, d = i % dk;
    float inter_q = 0.f, inter_k = 0.f;
    for (int e = 0; e < n.dv; ++e) {
      inter_q += load(dout, (t0 + j) * n.dv + e) * S[d * n.dv + e];
      inter_k += load(v, (t0 + j) * n.dv + e) * dS[d * n.dv + e];
    }
    float gq = scale * expf(ell[j * dk + d]) * inter_q;
    float gk = expf(last[d] - ell[j * dk + d]) * inter_k;
    for (int m = 0; m <= j; ++m) gq += scale * dA[j * C + m] * kk[m * dk + d] * expf(ell[j * dk + d] - ell[m * dk + d]);
    for (int a = j; a < L; ++a) gk += scale * dA[a * C + j] * qq[a * dk + d] * expf(ell[a * dk + d] - ell[j * dk + d]);
    dq[(t0 + j) * dk + d] = gq;
    dk_out[(t0 + j) * dk + d] = gk;
  }
  for (int i = threadIdx.x; i < L * n.dv; i += blockDim.x) {
    const int m = i / n.dv, e = i % n.dv;
    float acc = 0.f;
    for (int j = m; j < L; ++j) acc += A[j * C + m] * load(dout, (t0 + j) * n.dv + e);
    for (int d = 0; d < dk; ++d) acc += kk[m * dk + d] * expf(last[d] - ell[m * dk + d]) * dS[d * n.dv + e];
    dv_out[(t0 + m) * n.dv + e] = acc;
  }
}

template <class K, class... Args>
void launch(K kernel, dim3 grid, size_t smem, cudaStream_t stream, Args&&... args) {
  C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  kernel<<<grid, kThreads, smem, stream>>>(args...);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

/// Calls f(T{}) for the input dtypes the kernels are instantiated for.
template <class F>
void dispatch_input_dtype(at::ScalarType t, F&& f) {
  switch (t) {
    case at::kFloat: f(float{}); break;
    case at::kBFloat16: f(at::BFloat16{}); break;
    case at::kHalf: f(at::Half{}); break;
    default: TORCH_CHECK(false, "linear attention CUDA: dtype ", t, " not instantiated (fp32, bf16, fp16)");
  }
}

Dims dims_of(const at::Tensor& q, const at::Tensor& v, int64_t C) {
  const int64_t T = q.size(2);
  return {T, q.size(3), v.size(3), C, (T + C - 1) / C};
}

/// Grid of the state scans: one block per (batch·head, value tile).
dim3 value_tile_grid(int64_t BH, const Dims& n) {
  return dim3(static_cast<unsigned>(BH), static_cast<unsigned>((n.dv + kValueTile - 1) / kValueTile));
}
/// Grid of the per-chunk kernels: one block per (batch·head, chunk).
dim3 chunk_grid(int64_t BH, const Dims& n) { return dim3(static_cast<unsigned>(BH * n.N)); }

size_t state_smem(const Dims& n) { return sizeof(float) * (n.dk * kValueTile + 2 * n.C * n.dk + n.C * kValueTile); }
size_t chunk_smem(const Dims& n, int matrices) { return sizeof(float) * (3 * n.C * n.dk + matrices * n.C * n.C); }

}  // namespace

LinearAttentionResult fused_linear_attention_cuda_forward(const at::Tensor& q, const at::Tensor& k,
                                                          const at::Tensor& v, const at::Tensor& g,
                                                          const at::Tensor& s0, FusedShape shape) {
  const Dims n = dims_of(q, v, shape.chunk_size);
  const int64_t BH = q.size(0) * q.size(1);
  auto f32 = q.options().dtype(at::kFloat);
  at::Tensor states = at::empty({q.size(0), q.size(1), n.N, n.dk, n.dv}, f32);
  at::Tensor final_state = at::empty({q.size(0), q.size(1), n.dk, n.dv}, f32);
  at::Tensor out = at::empty({q.size(0), q.size(1), n.T, n.dv}, q.options());
  auto stream = c10::cuda::getCurrentCUDAStream();
  dispatch_input_dtype(q.scalar_type(), [&](auto tag) {
    using scalar_t = decltype(tag);
    launch(chunk_states_kernel<scalar_t>, value_tile_grid(BH, n), state_smem(n), stream,
           k.data_ptr<scalar_t>(), v.data_ptr<scalar_t>(), g.data_ptr<float>(), s0.data_ptr<float>(),
           states.data_ptr<float>(), final_state.data_ptr<float>(), n);
    launch(chunk_output_kernel<scalar_t>, chunk_grid(BH, n), chunk_smem(n, 1) + sizeof(float) * n.C * n.dk, stream, q.data_ptr<scalar_t>(),
           k.data_ptr<scalar_t>(), v.data_ptr<scalar_t>(), g.data_ptr<float>(), states.data_ptr<float>(),
           out.data_ptr<scalar_t>(), n, static_cast<float>(shape.scale));
  });
  return {out, final_state};
}

LinearAttentionGrads fused_linear_attention_cuda_backward(const at::Tensor& q, const at::Tensor& k,
                                                          const at::Tensor& v, const at::Tensor& g,
                                                          const at::Tensor& s0, const at::Tensor& dout,
                                                          const at::Tensor& dstate, FusedShape shape) {
  const Dims n = dims_of(q, v, shape.chunk_size);
  const int64_t B = q.size(0), H = q.size(1), BH = B * H;
  auto f32 = q.options().dtype(at::kFloat);
  at::Tensor states = at::empty({B, H, n.N, n.dk, n.dv}, f32), dstates = at::empty_like(states);
  at::Tensor final_state = at::empty({B, H, n.dk, n.dv}, f32);
  at::Tensor dS_T = dstate.defined() ? dstate : at::zeros({B, H, n.dk, n.dv}, f32);
  LinearAttentionGrads gr;
  gr.dq = at::empty({B, H, n.T, n.dk}, f32), gr.dk = at::empty_like(gr.dq);
  gr.dv = at::empty({B, H, n.T, n.dv}, f32), gr.dstate0 = at::empty({B, H, n.dk, n.dv}, f32);
  auto stream = c10::cuda::getCurrentCUDAStream();
  const dim3 tiles = value_tile_grid(BH, n);
  dispatch_input_dtype(q.scalar_type(), [&](auto tag) {
    using scalar_t = decltype(tag);
    launch(chunk_states_kernel<scalar_t>, tiles, state_smem(n), stream, k.data_ptr<scalar_t>(),
           v.data_ptr<scalar_t>(), g.data_ptr<float>(), s0.data_ptr<float>(), states.data_ptr<float>(),
           final_state.data_ptr<float>(), n);
    launch(state_grads_kernel<scalar_t>, tiles, state_smem(n), stream, q.data_ptr<scalar_t>(), g.data_ptr<float>(),
           dout.data_ptr<scalar_t>(), dS_T.data_ptr<float>(), dstates.data_ptr<float>(),
           gr.dstate0.data_ptr<float>(), n, static_cast<float>(shape.scale));
    launch(chunk_grads_kernel<scalar_t>, chunk_grid(BH, n), chunk_smem(n, 2), stream, q.data_ptr<scalar_t>(),
           k.data_ptr<scalar_t>(), v.data_ptr<scalar_t>(), g.data_ptr<float>(), dout.data_ptr<scalar_t>(),
           states.data_ptr<float>(), dstates.data_ptr<float>(), gr.dq.data_ptr<float>(), gr.dk.data_ptr<float>(),
           gr.dv.data_ptr<float>(), n, static_cast<float>(shape.scale));
  });
  // dg_t = revcumsum(q ⊙ dq − k ⊙ dk)_t + rowsum(S_T ⊙ dS_T), the final-state term included
  // (docs/kernels/linear.md, "Backward").
  at::Tensor D = q.to(at::kFloat) * gr.dq - k.to(at::kFloat) * gr.dk;
  gr.dg = D.flip({2}).cumsum(2).flip({2}) + (final_state * dS_T).sum(-1).unsqueeze(2);
  return gr;
}

}  // namespace attnlab::kernels
