// The Titans memory's fused CPU kernel (docs/mixers/titans.md, "Fused CPU kernel") and the
// choice between the memory's implementations.
#pragma once
#include <ATen/core/Tensor.h>

#include <string>
#include <utility>

#include "kernels/titans/spec.h"

namespace attnlab::kernels {

/// Same contract as memory_dual (dual.h), on CPU with an fp32 or fp64 state: each (batch, head)
/// walks its chunks with single-threaded GEMMs, and the backward is written by hand (it
/// recomputes each chunk from its stored start state). A state inside a chunk (τ > 0) first
/// finishes that chunk through memory_dual. First-order only: a double backward (create_graph)
/// is refused with an error.
std::pair<at::Tensor, MemoryState> memory_fused(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                const at::Tensor& theta, const at::Tensor& alpha,
                                                const at::Tensor& eta, const MemoryState& state,
                                                const MemorySpec& spec);

using MemoryKernel = std::pair<at::Tensor, MemoryState> (*)(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                            const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                            const MemoryState&, const MemorySpec&);

/// train.kernel for the memory: reference and recurrent run the token loop (memory_reference),
/// chunked the torch dual form (memory_dual), fused the kernel above; auto is fused on CPU and
/// chunked on CUDA (there is no CUDA memory kernel yet); fused on CUDA prints a note once and
/// runs chunked too (train.kernel is model-wide: the other mixers may have CUDA kernels).
MemoryKernel memory_kernel(const std::string& kernel, bool cuda);

}  // namespace attnlab::kernels
