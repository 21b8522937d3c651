// Shared memory the fused CUDA linear-attention kernels ask for, as a function of the head
// sizes and the chunk, so the dispatch can check it against the device's per-block limit
// before launching (docs/kernels/linear.md, "Fused CUDA"). Host-only arithmetic: it compiles
// and is tested without CUDA. The layouts are those of kernels/linear/cuda/linear_attention.cu
// (fp32 buffers); kLinearCudaValueTile is that file's value-column tile.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace attnlab::kernels {

constexpr int64_t kLinearCudaValueTile = 32;

struct LinearCudaSmem {
  size_t states;   ///< chunk_states / state_grads: S tile, k and ell of a chunk, v tile
  size_t output;   ///< chunk_output: q, k, ell, A [C, C], q ⊙ e^ell
  size_t grads;    ///< chunk_grads: q, k, ell, A and dA
  size_t largest() const;
};

LinearCudaSmem linear_cuda_smem_bytes(int64_t dk, int64_t C);
/// Empty when every kernel fits in `limit_bytes`; otherwise why not, naming dk, C and the bytes.
std::string linear_cuda_smem_problem(int64_t dk, int64_t C, size_t limit_bytes);

}  // namespace attnlab::kernels
