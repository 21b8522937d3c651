// Communicator: the collectives attnlab's parallelism uses, over LibTorch's own c10d backends
// (ProcessGroupGloo on CPU; NCCL is the next step), never a home-made transport. One TCPStore
// rendezvous per job (docs/parallelism.md): under torchrun's agent every rank is a client of
// MASTER_ADDR:MASTER_PORT below /worker/attempt_<restart>; otherwise rank 0 hosts the store.
// Every collective is blocking (it returns when the result is in place on this rank) and adds
// the bytes it moved through this rank to a per-collective counter, for the benchmarks.
// A world of one process needs no store: each collective is then the identity.
#pragma once
#include <ATen/core/Tensor.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "framework/dist/world.h"

namespace c10d {
class Store;
}  // namespace c10d

namespace attnlab {

enum class ReduceOp { sum, max, min };

struct CommOptions {
  std::chrono::milliseconds timeout{std::chrono::seconds(300)};  ///< parallel.timeout_s
  std::string backend = "gloo";                                  ///< gloo (CPU tensors)
};

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

  /// In place, on every rank. `t` must be contiguous.
  void all_reduce(at::Tensor& t, ReduceOp op = ReduceOp::sum);
  void broadcast(at::Tensor& t, int64_t root);
  /// out[r] receives rank r's `in`; returns size() tensors shaped like `in`.
  std::vector<at::Tensor> all_gather(const at::Tensor& in);
  /// `in` [size() * n] (flat, contiguous): this rank receives the sum over ranks of its slice r.
  at::Tensor reduce_scatter(const at::Tensor& in);
  void send(at::Tensor& t, int64_t dst, int tag = 0);
  void recv(at::Tensor& t, int64_t src, int tag = 0);
  void barrier();

  /// The job's key-value store (exchanging config hashes, agreeing on flags); null for one process.
  c10d::Store* store() const;
  const CommStats& stats() const { return stats_; }

 private:
  struct Groups;  // the c10d store and process group (communicator.cpp)
  int64_t rank_ = 0, size_ = 1;
  std::unique_ptr<Groups> groups_;
  CommStats stats_;
};

}  // namespace attnlab
