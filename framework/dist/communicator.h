// Communicator: the collectives attnlab's parallelism uses, over LibTorch's own c10d backends
// (ProcessGroupGloo on CPU tensors, ProcessGroupNCCL on CUDA tensors), never a home-made transport. One TCPStore
// rendezvous per job (docs/parallelism.md): under torchrun's agent every rank is a client of
// MASTER_ADDR:MASTER_PORT below /worker/attempt_<restart>; otherwise rank 0 hosts the store.
// The plain collectives block (they return when the result is in place on this rank); the
// *_async ones return a Pending to wait on, so gradient buckets travel while backward runs.
// Each adds the bytes it handed to the backend to a per-collective counter, for the benchmarks.
// A world of one process needs no store: each collective is then the identity.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/util/intrusive_ptr.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "framework/dist/world.h"

namespace c10d {
class Backend;
class Store;
}  // namespace c10d

namespace attnlab {

enum class ReduceOp { sum, max, min };

struct CommOptions {
  std::chrono::milliseconds timeout{std::chrono::seconds(300)};  ///< parallel.timeout_s
  std::string backend = "gloo";  ///< gloo (CPU tensors) | nccl (CUDA tensors; docs/parallelism.md)
};

/// A collective in flight. wait() returns once its result is in place (at once in a world of
/// one); waiting twice is a no-op. Every rank must start its collectives in the same order.
class Pending {
 public:
  Pending() = default;
  explicit Pending(std::function<void()> wait) : wait_(std::move(wait)) {}
  void wait() {
    if (!wait_) return;
    auto w = std::move(wait_);
    wait_ = nullptr;
    w();
  }

 private:
  std::function<void()> wait_;
};

/// Whether this build can make NCCL communicators (CUDA builds; docs/build.md).
bool nccl_available();

/// Bytes this rank sent into each kind of collective, and how many calls.
struct CommStats {
  std::map<std::string, int64_t> bytes, calls;
  void add(const std::string& what, int64_t n);
};

class Communicator {
 public:
  /// Joins the job `world` describes (a store rendezvous and a process group); throws
  /// std::runtime_error naming MASTER_ADDR:MASTER_PORT when it cannot within the timeout.
  Communicator(const World& world, CommOptions opts = {});
  ~Communicator();
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int64_t rank() const { return rank_; }
  int64_t size() const { return size_; }
  const std::string& backend() const { return backend_; }

  /// In place, on every rank. `t` must be contiguous.
  void all_reduce(at::Tensor& t, ReduceOp op = ReduceOp::sum);
  Pending all_reduce_async(at::Tensor& t, ReduceOp op = ReduceOp::sum);
  void broadcast(at::Tensor& t, int64_t root);
  /// out[r] receives rank r's `in`; returns size() tensors shaped like `in`.
  std::vector<at::Tensor> all_gather(const at::Tensor& in);
  /// `in` [size() * n] (flat, contiguous) -> out [n]: the sum over ranks of slice rank() of `in`.
  at::Tensor reduce_scatter(const at::Tensor& in);
  Pending reduce_scatter_async(at::Tensor& in, at::Tensor& out);
  /// `in` [n] (contiguous) -> out [size() * n]: slice r holds rank r's `in`.
  void all_gather_into(at::Tensor& in, at::Tensor& out);
  /// `in` [size() * n, ...] (contiguous) -> out (same shape): block j of `out` is rank j's block
  /// rank() of its `in` (equal splits along dim 0).
  void all_to_all(at::Tensor& in, at::Tensor& out);
  void send(at::Tensor& t, int64_t dst, int tag = 0);
  void recv(at::Tensor& t, int64_t src, int tag = 0);
  /// Sends `out` to rank `dst` and receives `in` from rank `src`, both posted before either is
  /// waited on, so a chain of ranks shifting data along does not serialise. dst or src < 0: that
  /// half is skipped (the ends of a chain).
  void exchange(at::Tensor& out, int64_t dst, at::Tensor& in, int64_t src, int tag = 0);
  void barrier();

  /// A communicator over the ranks `ranks` of this one (in that order), for context-parallel and
  /// data-parallel groups of a mesh. Every member calls it with the same `ranks` and `name`;
  /// non-members do not call it. Throws if this rank is not in `ranks`.
  std::unique_ptr<Communicator> subgroup(const std::vector<int64_t>& ranks, const std::string& name) const;

  /// The job's key-value store (exchanging config hashes, agreeing on flags); null for one process.
  c10d::Store* store() const;
  const CommStats& stats() const { return stats_; }

 private:
  struct Groups;  // the c10d store and process group (communicator.cpp)
  Communicator() = default;  // for subgroup()
  c10::intrusive_ptr<c10d::Backend> make_backend(const c10::intrusive_ptr<c10d::Store>& store, int64_t rank,
                                                 int64_t size) const;
  int64_t rank_ = 0, size_ = 1;
  std::string backend_;
  World world_;
  std::chrono::milliseconds timeout_{0};
  std::unique_ptr<Groups> groups_;
  CommStats stats_;
};

}  // namespace attnlab
