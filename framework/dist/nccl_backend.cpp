#include "framework/dist/nccl_backend.h"

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include <stdexcept>

#include "framework/dist/communicator.h"

#ifdef ATTNLAB_WITH_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace attnlab {

#ifdef ATTNLAB_WITH_NCCL
bool nccl_available() { return true; }

void select_cuda_device(int index) { c10::cuda::set_device(static_cast<c10::DeviceIndex>(index)); }

c10::intrusive_ptr<c10d::Backend> make_nccl_backend(const c10::intrusive_ptr<c10d::Store>& store,
                                                    int64_t rank, int64_t size,
                                                    std::chrono::milliseconds timeout) {
  auto o = c10d::ProcessGroupNCCL::Options::create();
  o->timeout = timeout;
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, static_cast<int>(rank),
                                                     static_cast<int>(size), o);
}
#else
bool nccl_available() { return false; }

void select_cuda_device(int) {
  throw std::runtime_error("this attnlab was built without CUDA (docs/build.md)");
}

c10::intrusive_ptr<c10d::Backend> make_nccl_backend(const c10::intrusive_ptr<c10d::Store>&, int64_t,
                                                    int64_t, std::chrono::milliseconds) {
  throw std::runtime_error("this attnlab was built without CUDA, so it has no NCCL backend; "
                           "rebuild with the CUDA toolkit present (docs/build.md)");
}
#endif

}  // namespace attnlab
