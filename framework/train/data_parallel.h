// Data parallelism over a Communicator (docs/parallelism.md, "Data parallel"): every rank
// holds the whole model and optimizer, sees its share of each global batch (the sampler's
// rank-strided order, so the global sample order does not depend on the world size), and the
// gradients are averaged across ranks before clipping and the update, so every rank applies
// the same step. Gradients go in flat buckets of parallel.bucket_mb, one all-reduce each, after
// the last micro-batch's backward (no overlap with backward yet).
#pragma once
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "framework/dist/communicator.h"

namespace attnlab {

class DataParallel {
 public:
  DataParallel(Communicator& comm, int64_t bucket_bytes) : comm_(comm), bucket_bytes_(bucket_bytes) {}

  /// Throws ConfigError naming both hashes when some rank built a different config.
  void check_same_config(const std::string& config_hash);
  /// Rank 0's values into every parameter, then a check that all ranks hold the same bytes.
  void sync_parameters(const std::vector<at::Tensor>& params);
  /// grad <- mean over ranks, for every parameter with a gradient (all ranks have the same set).
  void average_gradients(const std::vector<at::Tensor>& params);
  /// In place: the mean over ranks (losses), or the max (a stop flag).
  void mean(at::Tensor& t);
  bool any(bool flag);
  Communicator& comm() { return comm_; }

 private:
  Communicator& comm_;
  int64_t bucket_bytes_;
};

}  // namespace attnlab
