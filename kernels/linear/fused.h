// The fused gated-linear-attention kernels' raw entry points (no autograd; dispatch.cpp wraps
// them in one torch::autograd::Function for CPU and CUDA). Inputs are contiguous, in the
// accumulation dtype for CPU (fp32/fp64) and in fp32/bf16/fp16 for CUDA; g is [B, H, T, dk].
// The state is fp32 (fp64 for fp64 inputs); s0 is always given (zeros when the caller had
// none). `dstate` may be undefined (no final-state grad).
#pragma once
#include "kernels/linear/api.h"

namespace attnlab::kernels {

struct LinearAttentionGrads {
  at::Tensor dq, dk, dv, dg, dstate0;
};

struct FusedShape {
  double scale;
  int64_t chunk_size, sub_chunk;
};

LinearAttentionResult fused_linear_attention_cpu_forward(const at::Tensor& q, const at::Tensor& k,
                                                         const at::Tensor& v, const at::Tensor& g,
                                                         const at::Tensor& s0, FusedShape shape);
LinearAttentionGrads fused_linear_attention_cpu_backward(const at::Tensor& q, const at::Tensor& k,
                                                         const at::Tensor& v, const at::Tensor& g,
                                                         const at::Tensor& s0, const at::Tensor& dout,
                                                         const at::Tensor& dstate, FusedShape shape);

#ifdef ATTNLAB_WITH_CUDA
LinearAttentionResult fused_linear_attention_cuda_forward(const at::Tensor& q, const at::Tensor& k,
                                                          const at::Tensor& v, const at::Tensor& g,
                                                          const at::Tensor& s0, FusedShape shape);
LinearAttentionGrads fused_linear_attention_cuda_backward(const at::Tensor& q, const at::Tensor& k,
                                                          const at::Tensor& v, const at::Tensor& g,
                                                          const at::Tensor& s0, const at::Tensor& dout,
                                                          const at::Tensor& dstate, FusedShape shape);
#endif

}  // namespace attnlab::kernels
