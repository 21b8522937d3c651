// The Titans memory's fused kernel (docs/mixers/titans.md, "Fused CPU kernel" and "On CUDA") and
// the choice between the memory's implementations.
#pragma once
#include <ATen/core/Tensor.h>

#include <string>
#include <utility>

#include "kernels/titans/spec.h"

namespace attnlab::kernels {

/// Same contract as memory_dual (dual.h), with an fp32 or fp64 state, and a backward written by
/// hand (it recomputes each chunk from its stored start state). On CPU each (batch, head) walks
/// its chunks with single-threaded GEMMs; on other devices the batched engine below runs. A
/// state inside a chunk (τ > 0) first finishes that chunk through memory_dual. First-order only:
/// a double backward (create_graph) is refused with an error.
std::pair<at::Tensor, MemoryState> memory_fused(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                const at::Tensor& theta, const at::Tensor& alpha,
                                                const at::Tensor& eta, const MemoryState& state,
                                                const MemorySpec& spec);

/// The same with the batched engine on any device (fused_batched.h: one ATen op per step over every
/// (batch, head) of a chunk): what memory_fused runs on CUDA, here for CPU tests and comparisons.
std::pair<at::Tensor, MemoryState> memory_fused_batched(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                        const at::Tensor& theta, const at::Tensor& alpha,
                                                        const at::Tensor& eta, const MemoryState& state,
                                                        const MemorySpec& spec);

using MemoryKernel = std::pair<at::Tensor, MemoryState> (*)(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                            const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                            const MemoryState&, const MemorySpec&);

/// train.kernel for the memory: reference and recurrent run the token loop (memory_reference),
/// chunked the torch dual form (memory_dual), fused the kernel above; auto is fused on CPU, and
/// on CUDA chunked until the batched engine has passed tools/gpu/check.sh
/// (ATTNLAB_TITANS_CUDA_VALIDATED); fused on CUDA says so once.
MemoryKernel memory_kernel(const std::string& kernel, bool cuda);

/// Whether the batched engine has passed the GPU check in this build (ATTNLAB_TITANS_CUDA_VALIDATED).
bool memory_cuda_validated();

}  // namespace attnlab::kernels
