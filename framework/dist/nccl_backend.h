// The NCCL process group, kept in its own translation unit: only CUDA builds compile it against
// the wheel's NCCL headers (docs/build.md); elsewhere make_nccl_backend says what is missing.
#pragma once
#include <c10/util/intrusive_ptr.h>

#include <chrono>
#include <cstdint>

namespace c10d {
class Backend;
class Store;
}  // namespace c10d

namespace attnlab {

/// A ProcessGroupNCCL over `store` for CUDA tensors on the current device; throws
/// std::runtime_error in a build without NCCL.
c10::intrusive_ptr<c10d::Backend> make_nccl_backend(const c10::intrusive_ptr<c10d::Store>& store,
                                                    int64_t rank, int64_t size,
                                                    std::chrono::milliseconds timeout);

/// Makes CUDA device `index` this process's current device (NCCL creates its communicators on
/// it); throws in a build without CUDA.
void select_cuda_device(int index);

}  // namespace attnlab
