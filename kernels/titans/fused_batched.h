// The batched engine of the fused Titans memory (docs/mixers/titans.md, "Fused CPU kernel" and
// "On CUDA"): the same chunk passes and hand-written backward as the CPU engine
// (fused_cpu_chunk.h), but each step is one batched ATen op over every (batch, head) pair of a
// chunk (bmm for the GEMMs, elementwise ops for the row maps), so it runs on any device. On CUDA
// that is cuBLAS batched GEMMs and no autograd graph inside the sequence; on CPU it is the
// tested twin of the raw engine.
#pragma once
#include <ATen/core/Tensor.h>

#include <vector>

#include "kernels/titans/fused_layout.h"

namespace attnlab::kernels::titans_batched {

using titans_fused::ChunkShape;

/// in: the autograd function's inputs (fused_layout.h), contiguous. Writes y [B, H, nc·n, d],
/// the end state W_end, S_end [B, H, w_l, w_{l+1}] and the chunk start states W_starts,
/// S_starts [B, H, kept, w_l, w_{l+1}] (kept = nc: every chunk's; kept = 1: the last chunk's).
void forward(const std::vector<at::Tensor>& in, const ChunkShape& shape, at::Tensor& y,
             std::vector<at::Tensor>& W_end, std::vector<at::Tensor>& S_end, std::vector<at::Tensor>& W_starts,
             std::vector<at::Tensor>& S_starts);

/// From every chunk's start state and the gradients of y, of the end state and of the last
/// chunk's start W (the anchor): the gradient of every input, into `grads` (same layout as in).
void backward(const std::vector<at::Tensor>& in, const ChunkShape& shape, const std::vector<at::Tensor>& W_starts,
              const std::vector<at::Tensor>& S_starts, const at::Tensor& dy, const std::vector<at::Tensor>& dW_end,
              const std::vector<at::Tensor>& dS_end, const std::vector<at::Tensor>& dW_last,
              std::vector<at::Tensor>& grads);

}  // namespace attnlab::kernels::titans_batched
