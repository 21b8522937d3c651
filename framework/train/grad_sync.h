// Gradient averaging across data-parallel ranks, overlapped with backward (docs/parallelism.md,
// "Gradient buckets"). Parameters are grouped, in reverse registration order (roughly the order
// backward produces their gradients), into flat buckets of about parallel.bucket_mb. A
// post-accumulate-grad hook on each parameter copies its gradient into its bucket; when a
// bucket is full it starts an asynchronous all-reduce (DDP) or reduce-scatter (ZeRO-1) while
// backward goes on. Buckets always start in index order, so every rank issues the same
// collectives in the same order whatever order its hooks fire in.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "framework/dist/communicator.h"

namespace attnlab {

struct GradBucket {
  std::vector<size_t> params;    ///< indices into GradientSync::params(), in bucket order
  std::vector<int64_t> offsets;  ///< each parameter's first element in `flat`
  int64_t numel = 0;             ///< elements of gradients (the rest of `flat` is zero padding)
  at::Tensor flat;               ///< [padded], padded to a multiple of the world size
  at::Tensor shard;              ///< reduce_scatter: this rank's averaged [padded / world] slice
  Pending work;
  size_t ready = 0;              ///< parameters copied in this step
  int64_t shard_size() const { return shard.defined() ? shard.numel() : 0; }
};

class GradientSync {
 public:
  enum class Reduce { all_reduce, reduce_scatter };
  GradientSync(Communicator& comm, std::vector<at::Tensor> params, int64_t bucket_bytes, Reduce how);
  ~GradientSync();  // removes the hooks
  GradientSync(const GradientSync&) = delete;
  GradientSync& operator=(const GradientSync&) = delete;

  /// Call before each micro-batch's backward: only the last one's gradients (which then hold
  /// the sum over micro-batches) are communicated.
  void arm(bool last_micro_batch);
  /// After the last backward: starts what has not started (a parameter whose hook did not fire
  /// contributes its .grad(), or zeros if it has none), waits for everything, and leaves the
  /// mean over ranks in each .grad() (all_reduce) or in each bucket's shard (reduce_scatter).
  void finish();

  const std::vector<GradBucket>& buckets() const { return buckets_; }
  std::vector<GradBucket>& buckets() { return buckets_; }
  const std::vector<at::Tensor>& params() const { return params_; }
  Communicator& comm() { return comm_; }

  void on_gradient(size_t param);  // the hook's entry point

 private:
  void launch_ready();
  void launch(GradBucket& b);

  Communicator& comm_;
  std::vector<at::Tensor> params_;
  Reduce how_;
  std::vector<GradBucket> buckets_;
  std::vector<size_t> bucket_of_, slot_of_;  ///< per parameter: its bucket, its index in it
  std::vector<bool> copied_;  ///< this step, per parameter
  size_t next_ = 0;           ///< the first bucket not started this step
  bool armed_ = false;
};

}  // namespace attnlab
