// What the two engines of the fused Titans memory share (fused.cpp runs one of them inside its
// autograd function): the memory's shape, and the order of the function's tensor inputs.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/titans/spec.h"

namespace attnlab::kernels::titans_fused {

struct ChunkShape {
  std::vector<int64_t> widths;  ///< w_0 = d, hidden widths, w_L = d
  int64_t n = 0;                ///< rows of a chunk
  double loss_scale = 1, max_grad_norm = 0;
  MemoryActivation activation = MemoryActivation::gelu_tanh;
  size_t layers() const { return widths.size() - 1; }
  int64_t state_size(size_t l) const { return widths[l] * widths[l + 1]; }  ///< W_l's entries
};

// The inputs, in order: q, k, v [B, H, nc·n, d]; the eight coefficient tensors of
// ChunkCoefficients (chunk_coefficients.h: [B, H, nc, n, n], four [B, H, nc, n], three
// [B, H, nc]); then W_l and S_l [B, H, w_l, w_{l+1}] for every layer. The gradients come back in
// the same order.
constexpr size_t kQ = 0, kK = 1, kV = 2, kGates = 3, kStates = 11;

}  // namespace attnlab::kernels::titans_fused
