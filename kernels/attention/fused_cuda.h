// The raw CUDA entry points of the tiled softmax-family attention (docs/kernels/attention.md,
// "CUDA"). No autograd: fused_cpu.cpp wraps them in the same torch::autograd::Function as the
// CPU tiles, so `attention_fused` is one entry point for both devices. Inputs are contiguous
// CUDA tensors in fp32, bf16 or fp16 (q, k, v one dtype), key_bias fp32 [B, Hkv, Tk] or empty;
// every accumulation is fp32. The output has q's dtype, the log-sum-exp is fp32 [B, H, Tq]
// (+∞ for rows that see no key, and for sigmoid, which keeps no row statistics), and the
// gradients come back in fp32.
#pragma once
#include <ATen/core/Tensor.h>

#include "kernels/attention/spec.h"

namespace attnlab::kernels {

struct AttentionCudaForward {
  at::Tensor out, lse;
};
struct AttentionCudaGrads {
  at::Tensor dq, dk, dv, dbias;  ///< dbias undefined when key_bias was empty
};

/// Whether this build has the CUDA attention kernels (ATTNLAB_WITH_CUDA), and whether they have
/// been checked on a GPU (tools/gpu/check.sh); `kernel: auto` picks them only then.
bool attention_cuda_compiled();
bool attention_cuda_validated();

#ifdef ATTNLAB_WITH_CUDA
AttentionCudaForward attention_cuda_forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                            const at::Tensor& key_bias, const AttentionSpec& spec);
AttentionCudaGrads attention_cuda_backward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                           const at::Tensor& key_bias, const at::Tensor& out, const at::Tensor& lse,
                                           const at::Tensor& dout, const AttentionSpec& spec);
#endif

}  // namespace attnlab::kernels
