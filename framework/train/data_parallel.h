// Data parallelism over a Communicator (docs/parallelism.md, "Data parallel"): every rank
// holds the whole model and optimizer, sees its share of each global batch (the sampler's
// rank-strided order, so the global sample order does not depend on the world size), and the
// gradients are averaged across ranks before clipping and the update, so every rank applies
// the same step. The gradients themselves are the optimizer's business (framework/train/
// optimizer.h, grad_sync.h); this class does the rest: config agreement, the identical start,
// agreed flags and means.
#pragma once
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "framework/config/run_config.h"

#include "framework/dist/communicator.h"

namespace attnlab {

/// The backend parallel.backend names; auto: nccl for a CUDA device, gloo otherwise. Throws
/// ConfigError for nccl on CPU or in a build without NCCL.
std::string comm_backend(const ParallelConfig& cfg, c10::Device device);

class DataParallel {
 public:
  explicit DataParallel(Communicator& comm) : comm_(comm) {}

  /// Throws ConfigError naming both hashes when some rank built a different config.
  void check_same_config(const std::string& config_hash);
  /// Rank 0's values into every parameter, then a check that all ranks hold the same bytes.
  void sync_parameters(const std::vector<at::Tensor>& params);
  /// In place: the mean over ranks (losses), or the max (a stop flag).
  void mean(at::Tensor& t);
  bool any(bool flag);
  Communicator& comm() { return comm_; }

 private:
  Communicator& comm_;
};

}  // namespace attnlab
