#include "kernels/linear/cuda_smem.h"

#include <algorithm>

namespace attnlab::kernels {

size_t LinearCudaSmem::largest() const { return std::max({states, output, grads}); }

LinearCudaSmem linear_cuda_smem_bytes(int64_t dk, int64_t C) {
  const auto f = [](int64_t floats) { return sizeof(float) * static_cast<size_t>(floats); };
  const int64_t vt = kLinearCudaValueTile;
  return {f(dk * vt + 2 * C * dk + C * vt), f(4 * C * dk + C * C), f(3 * C * dk + 2 * C * C)};
}

std::string linear_cuda_smem_problem(int64_t dk, int64_t C, size_t limit_bytes) {
  const LinearCudaSmem s = linear_cuda_smem_bytes(dk, C);
  if (s.largest() <= limit_bytes) return "";
  return "fused CUDA linear attention needs " + std::to_string(s.largest()) +
         " bytes of shared memory per block for head_dim dk = " + std::to_string(dk) +
         " at chunk_size C = " + std::to_string(C) + ", more than this device's " +
         std::to_string(limit_bytes) + "; lower chunk_size or use kernel: chunked";
}

}  // namespace attnlab::kernels
