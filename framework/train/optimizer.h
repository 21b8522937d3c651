// The parameter update of a training step, on one process or across data-parallel ranks
// (docs/parallelism.md). The trainer calls, per step: before_backward(last) for every
// micro-batch, after_backward() once, then grad_norm(), scale_grads() when clipping, step(),
// zero_grad(). Three implementations behind make_optimizer:
//   - one process: AdamW on the local gradients;
//   - DDP (parallel.zero: 0): gradients all-reduced in buckets during backward, every rank
//     runs the same AdamW on the whole model;
//   - ZeRO-1 (parallel.zero: 1): gradients reduce-scattered in buckets, each rank keeps AdamW
//     moments for its slice of every bucket only, updates that slice and all-gathers the
//     parameters (framework/train/zero.h).
// Checkpoints hold the full moments either way (state() gathers them under ZeRO-1), so a run
// resumes at any world size and either stage.
#pragma once
#include <ATen/core/Tensor.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>

#include "framework/checkpoint/safetensors.h"
#include "framework/config/run_config.h"
#include "framework/dist/communicator.h"

namespace attnlab {

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  /// Before each micro-batch's backward; the last one's gradients are the ones reduced.
  virtual void before_backward(bool /*last_micro_batch*/) {}
  /// After the last backward: the gradients are the mean over ranks (or this rank's shard of it).
  virtual void after_backward() {}
  /// The global gradient L2 norm: a [1] tensor (fp32, or fp64 for fp64 gradients) on the
  /// parameters' device.
  virtual at::Tensor grad_norm() = 0;
  virtual void scale_grads(double factor) = 0;
  /// One AdamW update at learning rate `lr` (under ZeRO-1 followed by the parameter all-gather).
  virtual void step(double lr) = 0;
  virtual void zero_grad() = 0;
  /// The full moments, named as optimizer.safetensors stores them. A collective under ZeRO-1:
  /// every rank must call it; only where `writer` is set does it assemble them (elsewhere the
  /// result may be empty, so that only the writing rank holds a full copy).
  virtual NamedTensors state(bool writer = true) = 0;
  virtual void load_state(const std::map<std::string, at::Tensor>& tensors, int64_t steps,
                          const std::string& origin) = 0;
  virtual int64_t steps() const = 0;
  /// Moment bytes held by this rank.
  virtual int64_t state_bytes() const = 0;
  /// Gradient buckets per step (0 on one process).
  virtual size_t buckets() const { return 0; }
  /// Seconds spent waiting on collectives since the last call (the exposed communication).
  double take_comm_seconds() {
    const double s = comm_s_;
    comm_s_ = 0;
    return s;
  }

 protected:
  /// Runs f, counting its wall time as communication.
  template <class F> void timed(F&& f) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    comm_s_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  double comm_s_ = 0;
};

/// The dtype gradient norms are computed in: fp32 at least (bf16 gradients), fp64 for fp64 ones.
inline at::ScalarType grad_norm_dtype(const at::Tensor& g) {
  return at::promote_types(g.scalar_type(), at::kFloat);
}

inline int64_t bucket_bytes(const ParallelConfig& p) { return static_cast<int64_t>(p.bucket_mb * (1 << 20)); }

/// `comm` null (or of size 1): the one-process optimizer.
std::unique_ptr<Optimizer> make_optimizer(const NamedTensors& params, const OptimConfig& optim,
                                          const ParallelConfig& parallel, Communicator* comm);

}  // namespace attnlab
