// Where the trainer's batches come from (docs/data.md, "Data sources"). A source hands out
// inputs and targets [B, T]; a target of kIgnoreTarget is not scored, which is how synthetic
// tasks (MQAR, passkey) train and evaluate on their answer positions only. The cursor is the
// only state, so a checkpoint stores one integer and resume is exact.
#pragma once
#include <ATen/core/Tensor.h>

#include <memory>
#include <string>

namespace attnlab {

/// at::cross_entropy_loss's default ignore_index: such targets count neither in the loss nor in
/// the accuracy.
constexpr int64_t kIgnoreTarget = -100;

struct TokenBatch {
  at::Tensor inputs, targets;  ///< int64 [B, T]
  TokenBatch to(c10::Device device) const { return {inputs.to(device), targets.to(device)}; }
};

class DataSource {
 public:
  virtual ~DataSource() = default;
  /// The next `batch` training samples of this rank; advances the cursor.
  virtual TokenBatch next(int64_t batch) = 0;
  /// Samples first..first+batch-1 in a fixed order (validation); independent of the cursor.
  virtual TokenBatch sequential(int64_t first, int64_t batch) const = 0;
  /// True when only some targets are scored: the trainer then reports answer accuracy too.
  virtual bool answers_only() const { return false; }

  int64_t cursor = 0;  ///< samples this rank has taken
};

/// True for sources that need no tokenizer or shards: their tokens are drawn from the model's
/// vocabulary (data.source: mqar).
inline bool is_synthetic_source(const std::string& source) { return source == "mqar"; }

}  // namespace attnlab
